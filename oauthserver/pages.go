package oauthserver

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"html/template"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// The pages a browser sees: sign in (password, or an identity
// provider), allow a client, manage one's sessions. A signed-in browser
// has a session cookie (its token hashed in the database); every form
// that changes something carries a token derived from it.
const cookieName = "redoubt_session"

// session is the browser's sign-in, if any, and its form token.
func (s *Server) session(r *http.Request) (*storage.BrowserSession, string) {
	c, err := r.Cookie(cookieName)
	if err != nil || c.Value == "" {
		return nil, ""
	}
	b, err := s.DB.R().BrowserSessionOf(r.Context(), auth.HashToken(c.Value), s.Now().UnixMilli())
	if err != nil {
		return nil, ""
	}
	sum := sha256.Sum256([]byte("redoubt-form:" + c.Value))
	return &b, hex.EncodeToString(sum[:16])
}

// signIn starts a browser session for a user who proved who they are.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request, userID, provider, sid string) error {
	token := "rdb_" + auth.RandomString(32)
	now := s.Now()
	err := s.DB.Write(r.Context(), func(q Store) error {
		return q.AddBrowserSession(r.Context(), storage.BrowserSession{Hash: auth.HashToken(token), UserID: userID,
			AuthProvider: provider, SID: sid, AuthTime: now.UnixMilli(), ExpiresTS: now.Add(browserSessionLength).UnixMilli()}, now.UnixMilli())
	})
	if err != nil {
		return err
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Value: token, Path: Prefix, HttpOnly: true,
		Secure: strings.HasPrefix(s.issuer(), "https://"), SameSite: http.SameSiteLaxMode, MaxAge: int(browserSessionLength.Seconds())})
	return nil
}

// next is where a sign-in goes on to: the authorization request it is
// for, else the account page.
func (s *Server) next(id string) string {
	if id == "" {
		return s.issuer() + "account"
	}
	return s.issuer() + "login?id=" + url.QueryEscape(id)
}

// GET login: sign in, then allow the client. An identity provider's
// sign-in comes back here with a login token.
func (s *Server) loginPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	var req *authRequest
	if id != "" {
		var err error
		if req, err = (opStorage{s}).request(r.Context(), id); err != nil {
			s.page(w, http.StatusBadRequest, errorPage, map[string]any{"Message": "This sign-in request is unknown or has expired. Start again from your app."})
			return
		}
	}
	if token := r.URL.Query().Get("loginToken"); token != "" {
		t, err := s.Auth.RedeemLoginToken(r.Context(), token, httpapi.SignInBinding(r))
		if err == nil {
			err = s.signIn(w, r, t.UserID, t.AuthProvider, t.SID)
		}
		if err != nil {
			s.page(w, http.StatusForbidden, errorPage, map[string]any{"Message": "That sign-in did not work: start again."})
			return
		}
		http.Redirect(w, r, s.next(id), http.StatusFound)
		return
	}
	sess, form := s.session(r)
	if sess == nil {
		s.loginForm(w, http.StatusOK, id, "")
		return
	}
	if req == nil {
		http.Redirect(w, r, s.next(""), http.StatusFound)
		return
	}
	c, err := s.client(r.Context(), req.ClientID)
	if err != nil {
		s.page(w, http.StatusBadRequest, errorPage, map[string]any{"Message": "The app that sent you here is not registered."})
		return
	}
	name := c.m.ClientName
	if name == "" {
		name = c.m.ClientURI
	}
	u, _ := url.Parse(c.m.ClientURI)
	s.page(w, http.StatusOK, consentPage, map[string]any{"ID": id, "Form": form, "UserID": sess.UserID, "Client": name, "Host": u.Host})
}

func (s *Server) loginForm(w http.ResponseWriter, status int, id, problem string) {
	s.page(w, status, loginPage, map[string]any{"ID": id, "Problem": problem, "Password": s.Cfg.SSO.PasswordLogin,
		"Providers": s.SSO.Providers(), "SSO": func(idp string) string {
			return Prefix + "sso?idp=" + url.QueryEscape(idp) + "&id=" + url.QueryEscape(id)
		}})
}

// POST login: a password.
func (s *Server) passwordLogin(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("id")
	if !s.Cfg.SSO.PasswordLogin {
		s.loginForm(w, http.StatusForbidden, id, "Password sign-in is off: use your organisation's account.")
		return
	}
	userID, err := s.Auth.ResolveUser(r.PostFormValue("username"))
	if err == nil {
		err = s.Auth.VerifyPassword(r.Context(), userID, r.PostFormValue("password"))
	}
	if err == nil {
		err = s.signIn(w, r, userID, "", "")
	}
	if err != nil {
		s.loginForm(w, http.StatusForbidden, id, "Wrong user name or password.")
		return
	}
	http.Redirect(w, r, s.next(id), http.StatusFound)
}

// GET sso: sign in at an identity provider, then come back to login.
func (s *Server) ssoLogin(w http.ResponseWriter, r *http.Request) {
	to, binding, err := s.SSO.Start(r.Context(), r.URL.Query().Get("idp"), s.next(r.URL.Query().Get("id")), "")
	if err != nil {
		s.page(w, http.StatusBadRequest, errorPage, map[string]any{"Message": err.Error()})
		return
	}
	httpapi.BindSignIn(w.Header(), binding, strings.HasPrefix(s.issuer(), "https://"))
	http.Redirect(w, r, to, http.StatusFound)
}

// checkForm returns the browser's session if the form carries its token.
func (s *Server) checkForm(r *http.Request) *storage.BrowserSession {
	sess, form := s.session(r)
	if sess == nil || subtle.ConstantTimeCompare([]byte(form), []byte(r.PostFormValue("form"))) != 1 {
		return nil
	}
	return sess
}

// POST consent: the user allows (or refuses) the client. Allowed, the op
// package answers the client with a code.
func (s *Server) consent(w http.ResponseWriter, r *http.Request) {
	id := r.PostFormValue("id")
	sess := s.checkForm(r)
	if sess == nil {
		http.Redirect(w, r, s.next(id), http.StatusFound)
		return
	}
	req, err := (opStorage{s}).request(r.Context(), id)
	if err != nil {
		s.page(w, http.StatusBadRequest, errorPage, map[string]any{"Message": "This sign-in request is unknown or has expired. Start again from your app."})
		return
	}
	if r.PostFormValue("allow") == "" {
		op.AuthRequestError(w, r, req, oidc.ErrAccessDenied().WithDescription("the user refused"), s.op)
		return
	}
	err = s.DB.Write(r.Context(), func(q Store) error {
		return q.AllowOAuthRequest(r.Context(), id, sess.UserID, sess.AuthTime, sess.AuthProvider, sess.SID)
	})
	if err != nil {
		s.page(w, http.StatusBadRequest, errorPage, map[string]any{"Message": "This sign-in request was already answered."})
		return
	}
	http.Redirect(w, r, s.issuer()+"authorize/callback?id="+url.QueryEscape(id), http.StatusFound)
}

// POST logout: sign this browser out.
func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if sess := s.checkForm(r); sess != nil {
		_ = s.DB.Write(r.Context(), func(q Store) error { return q.DeleteBrowserSession(r.Context(), sess.Hash) })
	}
	http.SetCookie(w, &http.Cookie{Name: cookieName, Path: Prefix, MaxAge: -1})
	http.Redirect(w, r, s.next(r.PostFormValue("id")), http.StatusFound)
}

// GET account: the account management page clients link to: the
// account's sessions, each of which can be ended.
func (s *Server) accountPage(w http.ResponseWriter, r *http.Request) {
	sess, form := s.session(r)
	if sess == nil {
		s.loginForm(w, http.StatusOK, "", "")
		return
	}
	devices, err := s.DB.R().Devices(r.Context(), sess.UserID)
	if err != nil {
		s.page(w, http.StatusInternalServerError, errorPage, map[string]any{"Message": "Your sessions could not be read."})
		return
	}
	s.page(w, http.StatusOK, accountPage, map[string]any{"UserID": sess.UserID, "Form": form, "Devices": devices,
		"Focus": r.URL.Query().Get("device_id"), "When": func(ms int64) string {
			if ms == 0 {
				return ""
			}
			return time.UnixMilli(ms).UTC().Format("2006-01-02 15:04 UTC")
		}})
}

// POST account/end: end one of the account's sessions.
func (s *Server) endSession(w http.ResponseWriter, r *http.Request) {
	sess := s.checkForm(r)
	if sess == nil {
		http.Redirect(w, r, s.next(""), http.StatusFound)
		return
	}
	if err := s.Auth.DeleteDevices(r.Context(), sess.UserID, []string{r.PostFormValue("device_id")}); err != nil {
		s.page(w, http.StatusInternalServerError, errorPage, map[string]any{"Message": "The session could not be ended."})
		return
	}
	http.Redirect(w, r, s.next(""), http.StatusFound)
}

func (s *Server) page(w http.ResponseWriter, status int, t *template.Template, data map[string]any) {
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		s.Log.Error("page", "err", err)
		status = http.StatusInternalServerError
	}
	for k, v := range httpapi.Page(nil).Header { // the headers of every page
		w.Header()[k] = v
	}
	w.WriteHeader(status)
	_, _ = w.Write(b.Bytes())
}
