package oauthserver_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/oidctest"
	"github.com/redoubt-systems/redoubt/internal/testserver"
	"github.com/redoubt-systems/redoubt/sso"
)

const (
	app      = "http://127.0.0.1:4321"
	callback = app + "/callback"
)

// browser is a user's browser and the app it signs in to.
type browser struct {
	t        *testing.T
	srv      *testserver.Server
	http     *http.Client
	issuer   string
	clientID string
}

func newBrowser(t *testing.T, srv *testserver.Server) *browser {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	b := &browser{t: t, srv: srv, http: &http.Client{Jar: jar, CheckRedirect: func(req *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(req.URL.String(), app) {
			return http.ErrUseLastResponse // the app's page, not served here
		}
		return nil
	}}}
	md := srv.Anon().MustDo(t, "GET", "/_matrix/client/v1/auth_metadata", nil, 200)
	b.issuer = md.Get("issuer").Str
	code, res := b.register(map[string]any{"client_name": "Test app", "client_uri": app + "/",
		"redirect_uris": []string{callback}, "application_type": "web", "token_endpoint_auth_method": "none",
		"grant_types": []string{"authorization_code", "refresh_token"}, "response_types": []string{"code"}})
	if code != 201 || res.Get("client_id").Str == "" {
		t.Fatalf("registration: %d %s", code, res.Raw)
	}
	b.clientID = res.Get("client_id").Str
	return b
}

func (b *browser) register(meta map[string]any) (int, gjson.Result) {
	body, _ := json.Marshal(meta)
	res, err := http.Post(b.issuer+"register", "application/json", bytes.NewReader(body))
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, gjson.ParseBytes(out)
}

func (b *browser) get(u string) (*http.Response, string) {
	b.t.Helper()
	res, err := b.http.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

func (b *browser) post(u string, form url.Values) (*http.Response, string) {
	b.t.Helper()
	res, err := b.http.PostForm(u, form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res, string(body)
}

// pkce is a code verifier and its S256 challenge.
func pkce() (verifier, challenge string) {
	verifier = strings.Repeat("v3rifier-", 6)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func (b *browser) authorizeURL(device, challenge string, extra url.Values) string {
	q := url.Values{"response_type": {"code"}, "client_id": {b.clientID}, "redirect_uri": {callback},
		"scope": {"openid urn:matrix:client:api:* urn:matrix:client:device:" + device}, "state": {"st4te"}, "nonce": {"n0nce"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}}
	for k, v := range extra {
		q[k] = v
	}
	return b.issuer + "authorize?" + q.Encode()
}

var formToken = regexp.MustCompile(`name="form" value="([^"]+)"`)

// signIn goes from the authorization URL to the app's callback: the
// password, then the consent page. It returns the callback's query.
func (b *browser) signIn(authorize, user string, allow bool) url.Values {
	b.t.Helper()
	res, body := b.get(authorize)
	id := res.Request.URL.Query().Get("id")
	if res.StatusCode == 200 && strings.Contains(body, `name="password"`) {
		res, body = b.post(b.issuer+"login", url.Values{"id": {id}, "username": {user}, "password": {testserver.Password(user)}})
	}
	m := formToken.FindStringSubmatch(body)
	if res.StatusCode != 200 || m == nil || !strings.Contains(body, "Test app") {
		b.t.Fatalf("no consent page: %d %s", res.StatusCode, body)
	}
	form := url.Values{"id": {id}, "form": {m[1]}}
	if allow {
		form.Set("allow", "1")
	}
	res, body = b.post(b.issuer+"consent", form)
	loc, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusFound || err != nil || !strings.HasPrefix(loc.String(), callback) {
		b.t.Fatalf("consent answered %d, to %q: %s", res.StatusCode, res.Header.Get("Location"), body)
	}
	return loc.Query()
}

func (b *browser) token(form url.Values) (int, gjson.Result) {
	b.t.Helper()
	form.Set("client_id", b.clientID)
	res, err := http.PostForm(b.issuer+"token", form)
	if err != nil {
		b.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return res.StatusCode, gjson.ParseBytes(body)
}

// exchange trades an authorization code for tokens, as the app does.
func (b *browser) exchange(code, verifier string) (int, gjson.Result) {
	b.t.Helper()
	return b.token(url.Values{"grant_type": {"authorization_code"}, "code": {code}, "redirect_uri": {callback}, "code_verifier": {verifier}})
}

func whoami(t *testing.T, srv *testserver.Server, token string) (int, gjson.Result) {
	return srv.As(token).Do(t, "GET", "/_matrix/client/v3/account/whoami", nil)
}

// The whole flow as a client does it: discovery, registration,
// authorization with PKCE, the user's password and consent, the code for
// tokens, the Client-Server API with them as the scope's device, refresh,
// and revocation.
func TestAuthorizationCodeFlow(t *testing.T) {
	srv := testserver.Start(t)
	srv.Register(t, "alice")
	b := newBrowser(t, srv)
	md := srv.Anon().MustDo(t, "GET", "/_matrix/client/v1/auth_metadata", nil, 200)
	for _, want := range []string{`grant_types_supported.#(=="refresh_token")`, `code_challenge_methods_supported.#(=="S256")`,
		`response_types_supported.#(=="code")`, "revocation_endpoint", "registration_endpoint", "account_management_uri"} {
		if !md.Get(want).Exists() {
			t.Errorf("auth_metadata has no %s: %s", want, md.Raw)
		}
	}
	if !strings.HasSuffix(b.issuer, "/_redoubt/oauth/") {
		t.Fatalf("issuer %q", b.issuer)
	}
	discovery := srv.Anon().MustDo(t, "GET", "/_redoubt/oauth/.well-known/openid-configuration", nil, 200)
	if discovery.Get("issuer").Str != b.issuer {
		t.Fatalf("openid-configuration's issuer %s", discovery.Get("issuer").Raw)
	}

	verifier, challenge := pkce()
	cb := b.signIn(b.authorizeURL("OAUTHDEV", challenge, nil), "alice", true)
	if cb.Get("state") != "st4te" || cb.Get("code") == "" {
		t.Fatalf("callback %v", cb)
	}
	code, tok := b.exchange(cb.Get("code"), verifier)
	if code != 200 || tok.Get("access_token").Str == "" || tok.Get("refresh_token").Str == "" || tok.Get("id_token").Str == "" ||
		tok.Get("token_type").Str != "Bearer" || tok.Get("expires_in").Int() <= 0 {
		t.Fatalf("token: %d %s", code, tok.Raw)
	}
	if _, who := whoami(t, srv, tok.Get("access_token").Str); who.Get("user_id").Str != "@alice:test.local" || who.Get("device_id").Str != "OAUTHDEV" {
		t.Fatalf("whoami %s", who.Raw)
	}
	// The code works once.
	if code, res := b.exchange(cb.Get("code"), verifier); code != 400 || res.Get("error").Str != "invalid_grant" {
		t.Fatalf("replayed code: %d %s", code, res.Raw)
	}

	// Refresh: new tokens, the old access token gone.
	code, fresh := b.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Get("refresh_token").Str}})
	if code != 200 || fresh.Get("refresh_token").Str == "" || fresh.Get("refresh_token").Str == tok.Get("refresh_token").Str {
		t.Fatalf("refresh: %d %s", code, fresh.Raw)
	}
	if code, _ := whoami(t, srv, tok.Get("access_token").Str); code != 401 {
		t.Fatalf("the refreshed access token still works: %d", code)
	}
	if code, _ := whoami(t, srv, fresh.Get("access_token").Str); code != 200 {
		t.Fatalf("the new access token: %d", code)
	}
	// The classic refresh endpoint does not take the API's refresh tokens.
	srv.Anon().MustFail(t, "POST", "/_matrix/client/v3/refresh", map[string]any{"refresh_token": fresh.Get("refresh_token").Str}, 401, "M_UNKNOWN_TOKEN")
	// The old refresh token again: someone copied it. The session ends.
	if code, res := b.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Get("refresh_token").Str}}); code != 400 || res.Get("error").Str != "invalid_grant" {
		t.Fatalf("reused refresh token: %d %s", code, res.Raw)
	}
	if code, _ := whoami(t, srv, fresh.Get("access_token").Str); code != 401 {
		t.Fatalf("after a reused refresh token, the session goes on: %d", code)
	}
	if code, _ := b.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh.Get("refresh_token").Str}}); code != 400 {
		t.Fatalf("after a reused refresh token, its family refreshes: %d", code)
	}

	// A second sign-in (the browser is still signed in: consent only),
	// then revocation ends it.
	verifier, challenge = pkce()
	cb = b.signIn(b.authorizeURL("SECOND", challenge, nil), "alice", true)
	_, tok = b.exchange(cb.Get("code"), verifier)
	res, err := http.PostForm(b.issuer+"revoke", url.Values{"token": {tok.Get("access_token").Str}, "client_id": {b.clientID}})
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("revoke: %v %v", res, err)
	}
	res.Body.Close()
	if code, _ := whoami(t, srv, tok.Get("access_token").Str); code != 401 {
		t.Fatalf("revoked token: %d", code)
	}
}

// What a client or a user may get wrong: each refused, and no session.
func TestAuthorizationRefusals(t *testing.T) {
	srv := testserver.Start(t)
	srv.Register(t, "alice")
	b := newBrowser(t, srv)
	for _, tc := range []struct {
		name string
		meta map[string]any
		code string
	}{
		{"redirect on another host", map[string]any{"client_uri": app + "/", "redirect_uris": []string{"https://evil.example/cb"}}, "invalid_redirect_uri"},
		{"http client_uri", map[string]any{"client_uri": "http://app.example/", "redirect_uris": []string{"http://app.example/cb"}}, "invalid_client_metadata"},
		{"confidential client", map[string]any{"client_uri": app + "/", "redirect_uris": []string{callback}, "token_endpoint_auth_method": "client_secret_basic"}, "invalid_client_metadata"},
		{"implicit grant", map[string]any{"client_uri": app + "/", "redirect_uris": []string{callback}, "grant_types": []string{"implicit"}}, "invalid_client_metadata"},
		{"native with a stranger's scheme", map[string]any{"client_uri": "https://app.example/", "application_type": "native", "redirect_uris": []string{"com.evil:/cb"}}, "invalid_redirect_uri"},
		{"no redirect URIs", map[string]any{"client_uri": app + "/"}, "invalid_redirect_uri"},
	} {
		if code, res := b.register(tc.meta); code != 400 || res.Get("error").Str != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, code, res.Raw, tc.code)
		}
	}
	if code, res := b.register(map[string]any{"client_uri": "https://app.example/", "application_type": "native",
		"redirect_uris": []string{"example.app:/cb", "http://127.0.0.1/cb"}}); code != 201 {
		t.Errorf("a native client: %d %s", code, res.Raw)
	}
	// A grant type not offered here is left out, not refused.
	if code, res := b.register(map[string]any{"client_uri": "https://app.example/", "application_type": "native", "redirect_uris": []string{"example.app:/cb"},
		"grant_types": []string{"authorization_code", "refresh_token", "urn:ietf:params:oauth:grant-type:device_code"}}); code != 201 ||
		res.Get("grant_types").Raw != `["authorization_code","refresh_token"]` {
		t.Errorf("a client that also asks for the device code grant: %d %s", code, res.Raw)
	}

	// A redirect URI the client did not register: the server does not
	// send the browser there.
	_, challenge := pkce()
	res, body := b.get(b.authorizeURL("DEV", challenge, url.Values{"redirect_uri": {app + "/elsewhere"}}))
	if res.StatusCode != 400 || strings.HasPrefix(res.Header.Get("Location"), app) {
		t.Fatalf("unregistered redirect URI: %d %s", res.StatusCode, body)
	}
	// No PKCE, no device: the client hears why.
	for _, extra := range []url.Values{{"code_challenge": {""}}, {"scope": {"openid urn:matrix:client:api:*"}}} {
		res, _ = b.get(b.authorizeURL("DEV", challenge, extra))
		loc, _ := url.Parse(res.Header.Get("Location"))
		if res.StatusCode != 302 || loc == nil || loc.Query().Get("error") == "" || loc.Query().Get("code") != "" {
			t.Fatalf("%v: %d to %q", extra, res.StatusCode, res.Header.Get("Location"))
		}
	}
	// A wrong password is another try; refusing sends the app an error.
	res, body = b.get(b.authorizeURL("DEV", challenge, nil))
	id := res.Request.URL.Query().Get("id")
	res, body = b.post(b.issuer+"login", url.Values{"id": {id}, "username": {"alice"}, "password": {"wrong"}})
	if res.StatusCode != 403 || !strings.Contains(body, "Wrong user name or password") {
		t.Fatalf("wrong password: %d %s", res.StatusCode, body)
	}
	cb := b.signIn(b.authorizeURL("DEV", challenge, nil), "alice", false)
	if cb.Get("error") != "access_denied" || cb.Get("code") != "" {
		t.Fatalf("refused: %v", cb)
	}
	// Consent without the form's token does nothing.
	res, _ = b.get(b.authorizeURL("DEV", challenge, nil))
	id = res.Request.URL.Query().Get("id")
	res, _ = b.post(b.issuer+"consent", url.Values{"id": {id}, "allow": {"1"}})
	if strings.HasPrefix(res.Header.Get("Location"), app) || strings.Contains(res.Request.URL.String(), "code=") {
		t.Fatalf("consent without the form token reached the app: %s", res.Header.Get("Location"))
	}
	// A code with the wrong verifier, or for another redirect URI.
	_, challenge = pkce()
	cb = b.signIn(b.authorizeURL("DEV", challenge, nil), "alice", true)
	for _, form := range []url.Values{
		{"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {callback}, "code_verifier": {strings.Repeat("x", 50)}},
		{"grant_type": {"authorization_code"}, "code": {"made-up"}, "redirect_uri": {callback}, "code_verifier": {strings.Repeat("x", 50)}},
		{"grant_type": {"refresh_token"}, "refresh_token": {"made-up"}},
		{"grant_type": {"password"}, "username": {"alice"}, "password": {testserver.Password("alice")}},
	} {
		if code, res := b.token(form); code < 400 || res.Get("access_token").Exists() {
			t.Errorf("%v: %d %s", form, code, res.Raw)
		}
	}
	devices := srv.Login(t, "alice").MustDo(t, "GET", "/_matrix/client/v3/devices", nil, 200).Get("devices.#.device_id").Raw
	if strings.Contains(devices, "DEV") {
		t.Fatalf("a refused sign-in left a device: %s", devices)
	}
}

// The account page lists the account's sessions and ends one.
func TestAccountPage(t *testing.T) {
	srv := testserver.Start(t)
	srv.Register(t, "alice")
	other := srv.Login(t, "alice")
	b := newBrowser(t, srv)
	verifier, challenge := pkce()
	cb := b.signIn(b.authorizeURL("PHONE", challenge, nil), "alice", true)
	b.exchange(cb.Get("code"), verifier)
	res, body := b.get(b.issuer + "account")
	if res.StatusCode != 200 || !strings.Contains(body, "@alice:test.local") || !strings.Contains(body, "PHONE") {
		t.Fatalf("account page: %d %s", res.StatusCode, body)
	}
	dev := other.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200).Get("device_id").Str
	m := formToken.FindStringSubmatch(body)
	b.post(b.issuer+"account/end", url.Values{"form": {m[1]}, "device_id": {dev}})
	other.MustFail(t, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	// Without the form token, nothing ends.
	anon := newBrowser(t, srv)
	anon.post(anon.issuer+"account/end", url.Values{"device_id": {"PHONE"}})
	if _, body = b.get(b.issuer + "account"); !strings.Contains(body, "PHONE") {
		t.Fatal("a request without the form token ended a session")
	}
}

// withProvider runs an identity provider with alice, and a server that
// signs in with it only (no password).
func withProvider(t *testing.T, edit func(*config.Provider)) (*oidctest.Provider, *testserver.Server) {
	t.Helper()
	idp := oidctest.Start(t, oidctest.Client{ID: "redoubt", Secret: "s3cret", RedirectURIs: []string{"http://127.0.0.1:*" + sso.CallbackPath}})
	idp.AddUser(oidcAlice)
	srv := testserver.Start(t, func(c *config.Config) {
		p := config.Provider{ID: "corp", Name: "Corp", Issuer: idp.URL, ClientID: "redoubt", ClientSecret: "s3cret", CreateAccounts: true}
		if edit != nil {
			edit(&p)
		}
		c.SSO.Providers = []config.Provider{p}
		c.SSO.PasswordLogin = false
	})
	return idp, srv
}

var oidcAlice = oidctest.User{ID: "sub-alice", Username: "alice", Password: "at-idp", Name: "Alice", Claims: map[string]any{"sid": "idp-session"}}

// signInAtProvider goes through the sign-in page's provider button, the
// provider's login and the consent page, and returns the app's tokens.
func (b *browser) signInAtProvider(idp *oidctest.Provider, device string) gjson.Result {
	t := b.t
	t.Helper()
	verifier, challenge := pkce()
	res, body := b.get(b.authorizeURL(device, challenge, nil))
	if strings.Contains(body, `name="password"`) {
		t.Fatal("the sign-in page offers a password with password_login off")
	}
	link := regexp.MustCompile(`href="([^"]*sso\?[^"]*)"`).FindStringSubmatch(body)
	if res.StatusCode != 200 || link == nil {
		t.Fatalf("sign-in page: %d %s", res.StatusCode, body)
	}
	res, _ = b.get(b.srv.URL + strings.ReplaceAll(link[1], "&amp;", "&"))
	if !strings.HasPrefix(res.Request.URL.String(), idp.URL+"/login/username") {
		t.Fatalf("not at the provider's login: %s", res.Request.URL)
	}
	res, body = b.post(idp.URL+"/login/username", url.Values{"id": {res.Request.URL.Query().Get("authRequestID")},
		"username": {oidcAlice.Username}, "password": {oidcAlice.Password}})
	m := formToken.FindStringSubmatch(body)
	if res.StatusCode != 200 || m == nil || !strings.Contains(body, "@alice:test.local") {
		t.Fatalf("after the provider: %d %s", res.StatusCode, body)
	}
	id := res.Request.URL.Query().Get("id")
	res, _ = b.post(b.issuer+"consent", url.Values{"id": {id}, "form": {m[1]}, "allow": {"1"}})
	loc, _ := url.Parse(res.Header.Get("Location"))
	_, tok := b.exchange(loc.Query().Get("code"), verifier)
	if _, who := whoami(t, b.srv, tok.Get("access_token").Str); who.Get("device_id").Str != device {
		t.Fatalf("whoami %s", who.Raw)
	}
	return tok
}

// The sign-in page offers the organisation's identity provider: the
// browser signs in there, comes back signed in, and allows the app. The
// provider's back-channel logout then ends that device.
func TestSignInWithProvider(t *testing.T) {
	idp, srv := withProvider(t, nil)
	b := newBrowser(t, srv)
	tok := b.signInAtProvider(idp, "SSODEV")
	logout, err := http.PostForm(srv.URL+sso.BackchannelLogoutPath, url.Values{"logout_token": {idp.LogoutToken(t, "redoubt", "", "idp-session")}})
	if err != nil || logout.StatusCode != 200 {
		t.Fatalf("logout: %v %v", logout, err)
	}
	logout.Body.Close()
	if code, _ := whoami(t, srv, tok.Get("access_token").Str); code != 401 {
		t.Fatalf("after the provider's logout: %d", code)
	}
}

// A provider's sign-in for the sign-in pages works only in the browser
// that began it: someone cannot sign another's browser in to their own
// account by sending them the link with the login token.
func TestLoginTokenStaysInItsBrowser(t *testing.T) {
	idp, srv := withProvider(t, nil)
	b := newBrowser(t, srv)
	_, challenge := pkce()
	res, _ := b.get(b.authorizeURL("DEV", challenge, nil))
	id := res.Request.URL.Query().Get("id")
	mine := oidctest.NewBrowser()
	back := idp.SignIn(t, mine, b.issuer+"sso?idp=corp&id="+url.QueryEscape(id), oidcAlice.Username, oidcAlice.Password)
	link := back.Header.Get("Location")
	if back.StatusCode != 302 || !strings.Contains(link, "loginToken=") {
		t.Fatalf("callback: %d to %q", back.StatusCode, link)
	}
	if res := oidctest.NewBrowser().Get(t, link); res.StatusCode != 403 {
		t.Fatalf("another browser redeemed the login token: %d", res.StatusCode)
	}
	if res := mine.Get(t, link); res.StatusCode != 302 {
		t.Fatalf("the browser that began it: %d", res.StatusCode)
	}
}

// With check_at_refresh, refreshing the app's tokens asks the provider
// again: someone it disabled is refused, and their session ends.
func TestCheckAtRefresh(t *testing.T) {
	idp, srv := withProvider(t, func(p *config.Provider) {
		p.CheckAtRefresh = config.Duration(time.Minute)
		p.Scopes = []string{"openid", "profile", "offline_access"}
	})
	b := newBrowser(t, srv)
	tok := b.signInAtProvider(idp, "CHECKED")
	srv.Clock.Advance(2 * time.Minute)
	code, fresh := b.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.Get("refresh_token").Str}})
	if code != 200 {
		t.Fatalf("refresh while the provider vouches: %d %s", code, fresh.Raw)
	}
	idp.DisableUser(oidcAlice.ID)
	srv.Clock.Advance(2 * time.Minute)
	if code, res := b.token(url.Values{"grant_type": {"refresh_token"}, "refresh_token": {fresh.Get("refresh_token").Str}}); code != 400 || res.Get("error").Str != "invalid_grant" {
		t.Fatalf("refresh after the provider disabled the user: %d %s", code, res.Raw)
	}
	if code, _ := whoami(t, srv, fresh.Get("access_token").Str); code != 401 {
		t.Fatalf("the session goes on: %d", code)
	}
}

// Two exchanges of one code at once: one session, not two.
func TestCodeExchangeRace(t *testing.T) {
	srv := testserver.Start(t)
	srv.Register(t, "alice")
	b := newBrowser(t, srv)
	for round := range 5 {
		verifier, challenge := pkce()
		cb := b.signIn(b.authorizeURL("RACE", challenge, nil), "alice", true)
		form := url.Values{"grant_type": {"authorization_code"}, "code": {cb.Get("code")}, "redirect_uri": {callback}, "code_verifier": {verifier}}
		results := make(chan int, 4)
		for range 4 {
			go func() {
				f := url.Values{}
				for k, v := range form {
					f[k] = v
				}
				code, _ := b.token(f)
				results <- code
			}()
		}
		ok := 0
		for range 4 {
			if <-results == 200 {
				ok++
			}
		}
		if ok != 1 {
			t.Fatalf("round %d: %d exchanges of one code succeeded", round, ok)
		}
	}
}

// No request to the authorization server, however malformed, makes it
// fail: each is answered below 500, and the server goes on.
func TestGarbage(t *testing.T) {
	srv := testserver.Start(t)
	srv.Register(t, "alice")
	b := newBrowser(t, srv)
	paths := []string{"authorize", "authorize/callback", "token", "revoke", "keys", "userinfo", "end_session", "oauth/introspect",
		".well-known/openid-configuration", "register", "login", "sso", "consent", "logout", "account", "account/end", "device_authorization", "nope"}
	queries := []string{"", "?id=%00&client_id=%FF&response_type=token&redirect_uri=javascript:x&scope=&code_challenge=&state=" + strings.Repeat("s", 5000),
		"?id=rdq_x&idp=nope&loginToken=x&grant_type=authorization_code&code=x"}
	bodies := []string{"", "{", "null", `{"client_uri":5,"redirect_uris":"x"}`, "grant_type=refresh_token&refresh_token=x&client_id=y",
		"token=x&client_id=" + b.clientID, "id=%00&form=x&allow=1&device_id=x&username=alice&password=x", strings.Repeat("a=", 40000)}
	for _, p := range paths {
		for _, q := range queries {
			for _, method := range []string{"GET", "POST"} {
				for _, body := range bodies {
					if method == "GET" && body != "" {
						continue
					}
					req, _ := http.NewRequest(method, b.issuer+p+q, strings.NewReader(body))
					if strings.HasPrefix(body, "{") || body == "null" {
						req.Header.Set("Content-Type", "application/json")
					} else {
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					}
					res, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					res.Body.Close()
					if res.StatusCode >= 500 {
						t.Errorf("%s %s%.60s with %.40q: %d", method, p, q, body, res.StatusCode)
					}
				}
			}
		}
	}
	srv.Login(t, "alice").MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200)
}
