package clientapi

import (
	"bytes"
	"crypto/subtle"
	"html/template"
	"net/http"
	"net/url"
	"strings"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/oauthserver"
)

// identityProviders is m.login.sso's list of providers.
func (a *API) identityProviders() []map[string]string {
	idps := []map[string]string{}
	for _, p := range a.SSO.Providers() {
		idps = append(idps, map[string]string{"id": p.ID, "name": p.Name})
	}
	return idps
}

// clientRedirect checks the URL a client asks to get its login token at:
// an absolute URL without a fragment, of any scheme (apps have their
// own) but those a browser runs or reads locally, which would run on
// this server's page.
func clientRedirect(r *http.Request) (string, error) {
	raw := r.URL.Query().Get("redirectUrl")
	if raw == "" {
		return "", matrixerr.MissingParam("redirectUrl is required")
	}
	u, err := url.Parse(raw)
	if err != nil || !u.IsAbs() || u.Fragment != "" || len(raw) > 2048 {
		return "", matrixerr.InvalidParam("redirectUrl must be an absolute URL without a fragment")
	}
	switch strings.ToLower(u.Scheme) {
	case "javascript", "data", "vbscript", "file", "blob":
		return "", matrixerr.InvalidParam("redirectUrl may not be a %s: URL", u.Scheme)
	}
	return raw, nil
}

// GET /_matrix/client/v3/login/sso/redirect
//
// With one provider, straight to it; with several, a page to choose.
func (a *API) ssoRedirect(r *http.Request) httpapi.Response {
	redirect, err := clientRedirect(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	providers := a.SSO.Providers()
	switch len(providers) {
	case 0:
		return httpapi.Fail(matrixerr.NotFound("single sign-on is not configured"))
	case 1:
		return a.startSSO(r, providers[0].ID, redirect, "")
	}
	return page(choosePage, map[string]any{"Title": "Sign in", "Providers": providers,
		"Link": func(id string) string {
			return "/_matrix/client/v3/login/sso/redirect/" + url.PathEscape(id) + "?redirectUrl=" + url.QueryEscape(redirect)
		}})
}

// GET /_matrix/client/v3/login/sso/redirect/{idpId}
func (a *API) ssoRedirectIdP(r *http.Request) httpapi.Response {
	redirect, err := clientRedirect(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	return a.startSSO(r, mux.Vars(r)["idpId"], redirect, "")
}

// startSSO sends the browser to a provider, with the cookie that ties
// the sign-in to it.
func (a *API) startSSO(r *http.Request, idp, redirect, uiaSession string) httpapi.Response {
	to, binding, err := a.SSO.Start(r.Context(), idp, redirect, uiaSession)
	if err != nil {
		return httpapi.Fail(err)
	}
	res := httpapi.Redirect(to)
	httpapi.BindSignIn(res.Header, binding, strings.HasPrefix(a.Cfg.PublicBaseURL, "https://"))
	return res
}

// fallbackForm is the cookie of the fallback page's form: a page of this
// server's in this browser sent it (another site cannot read the cookie,
// nor is it sent with another site's request).
const fallbackForm = "redoubt_uia_form"

// GET /_matrix/client/v3/auth/m.login.sso/fallback/web
//
// The page a client opens for user-interactive auth with m.login.sso: it
// names the account and what is being confirmed, and the user signs in at
// a provider (a POST from this page); then the client retries with the
// session.
func (a *API) ssoFallback(r *http.Request) httpapi.Response {
	session := r.URL.Query().Get("session")
	if session == "" || len(session) > 255 {
		return httpapi.Fail(matrixerr.MissingParam("session is required"))
	}
	u, err := a.Auth.SSOSession(r.Context(), session)
	if err != nil {
		return httpapi.Fail(err)
	}
	form := auth.RandomString(16)
	res := page(fallbackPage, map[string]any{"Title": "Confirm it is you", "Providers": a.SSO.Providers(),
		"UserID": u.UserID, "What": u.Description, "Session": session, "Form": form})
	res.Header.Add("Set-Cookie", (&http.Cookie{Name: fallbackForm, Value: form, Path: "/_matrix/client/v3/auth/m.login.sso/fallback/web",
		HttpOnly: true, Secure: strings.HasPrefix(a.Cfg.PublicBaseURL, "https://"), SameSite: http.SameSiteStrictMode, MaxAge: 600}).String())
	return res
}

// POST /_matrix/client/v3/auth/m.login.sso/fallback/web
func (a *API) ssoFallbackStart(r *http.Request) httpapi.Response {
	r.Body = http.MaxBytesReader(nil, r.Body, 8<<10)
	c, err := r.Cookie(fallbackForm)
	if err := r.ParseForm(); err != nil {
		return httpapi.Fail(matrixerr.BadRequest("the body must be a form"))
	}
	if err != nil || c.Value == "" || subtle.ConstantTimeCompare([]byte(c.Value), []byte(r.PostForm.Get("form"))) != 1 {
		return httpapi.Fail(matrixerr.Forbidden("open the confirmation page from your app, and continue from it"))
	}
	session := r.PostForm.Get("session")
	if _, err := a.Auth.SSOSession(r.Context(), session); err != nil {
		return httpapi.Fail(err)
	}
	return a.startSSO(r, r.PostForm.Get("idp"), "", session)
}

// GET /_synapse/client/oidc/callback
//
// The provider sends the browser back here. A login goes on to the
// client with a login token: at once to a client URL the configuration
// trusts, else after the user confirmed the client on a page (the spec's
// protection against a link that sends someone's token to a stranger).
func (a *API) ssoCallback(r *http.Request) httpapi.Response {
	q := r.URL.Query()
	done, err := a.SSO.Callback(r.Context(), q.Get("state"), q.Get("code"), q.Get("error"), q.Get("error_description"), httpapi.SignInBinding(r))
	if err != nil {
		return httpapi.Fail(err)
	}
	if done.UIASession != "" {
		return page(uiaDonePage, map[string]any{"Title": "Done"})
	}
	to, err := url.Parse(done.RedirectURL)
	if err != nil {
		return httpapi.Fail(err)
	}
	v := to.Query()
	v.Set("loginToken", done.LoginToken)
	to.RawQuery = v.Encode()
	// The OAuth 2.0 API's sign-in page, which makes the token a browser
	// session, and the URLs the configuration trusts get it at once.
	for _, trusted := range append([]string{a.Cfg.PublicBaseURL + oauthserver.Prefix + "login"}, a.Cfg.SSO.ClientRedirects...) {
		if under(done.RedirectURL, trusted) {
			return httpapi.Redirect(to.String())
		}
	}
	host := to.Host
	if host == "" {
		host = to.Scheme + ":"
	}
	return page(confirmPage, map[string]any{"Title": "Continue to your client", "UserID": done.UserID,
		"Host": host, "Target": template.URL(to.String())})
}

// under reports whether a URL is at or below a trusted one: the same
// scheme and host (exactly: no user part, no longer host name), and a path
// that starts with the trusted one's.
func under(raw, trusted string) bool {
	u, err1 := url.Parse(raw)
	t, err2 := url.Parse(trusted)
	if err1 != nil || err2 != nil || u.User != nil || t.Host == "" {
		return false
	}
	return strings.EqualFold(u.Scheme, t.Scheme) && strings.EqualFold(u.Host, t.Host) && strings.HasPrefix(u.Path, t.Path)
}

// POST /_synapse/client/oidc/backchannel_logout
//
// A provider ends the sessions of someone who signed out there, or left.
func (a *API) ssoBackchannelLogout(r *http.Request) httpapi.Response {
	r.Body = http.MaxBytesReader(nil, r.Body, 64<<10)
	if err := r.ParseForm(); err != nil {
		return httpapi.Fail(matrixerr.BadRequest("the body must be a form"))
	}
	raw := r.PostForm.Get("logout_token")
	if raw == "" {
		return httpapi.Fail(matrixerr.MissingParam("logout_token is required"))
	}
	return httpapi.EmptyOr(a.SSO.BackchannelLogout(r.Context(), raw))
}

func page(t *template.Template, data map[string]any) httpapi.Response {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.Page(b.Bytes())
}

const pageHead = `<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>{{.Title}}</title>
<style>body{font-family:system-ui,sans-serif;max-width:28rem;margin:4rem auto;padding:0 1rem;line-height:1.5}
a.button,button.button{display:block;width:100%;border:0;font:inherit;cursor:pointer;margin:.75rem 0;padding:.75rem 1rem;border-radius:.5rem;background:#0b6bcb;color:#fff;text-decoration:none;text-align:center}</style>
</head><body>`

var (
	choosePage = template.Must(template.New("choose").Parse(pageHead + `<h1>{{.Title}}</h1>
<p>Continue with your organisation's account:</p>
{{range .Providers}}<a class="button" href="{{call $.Link .ID}}">{{.Name}}</a>{{end}}
</body></html>`))

	confirmPage = template.Must(template.New("confirm").Parse(pageHead + `<h1>Continue to your client?</h1>
<p>You signed in as <strong>{{.UserID}}</strong>. Continuing gives <strong>{{.Host}}</strong> access to your account.</p>
<p>Continue only if that is the app or site you are signing in to.</p>
<a class="button" id="continue" href="{{.Target}}">Continue</a>
</body></html>`))

	fallbackPage = template.Must(template.New("fallback").Parse(pageHead + `<h1>{{.Title}}</h1>
<p>An app signed in as <strong>{{.UserID}}</strong> asks you to confirm it is you, to <strong>{{.What}}</strong>.</p>
<p>Continue only if you are doing that now.</p>
<form method="post">
<input type="hidden" name="session" value="{{.Session}}"><input type="hidden" name="form" value="{{.Form}}">
{{range .Providers}}<button class="button" type="submit" name="idp" value="{{.ID}}">Continue with {{.Name}}</button>{{end}}
</form>
</body></html>`))

	uiaDonePage = template.Must(template.New("done").Parse(pageHead + `<h1>Thank you</h1>
<p>You confirmed it is you. You can close this window and go back to your client.</p>
<script>
if (window.onAuthDone) { window.onAuthDone(); }
else if (window.opener && window.opener.postMessage) { window.opener.postMessage("authDone", "*"); }
</script>
</body></html>`))
)
