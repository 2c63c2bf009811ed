package sso_test

import (
	"io"
	"net/http"
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
	clientID     = "redoubt"
	clientSecret = "redoubt-secret"
	// app is the client's own page, trusted to get login tokens at once.
	app = "http://app.test/after-login"
)

var alice = oidctest.User{ID: "sub-alice", Username: "alice", Password: "alice-at-idp", Name: "Alice Smith",
	Email: "alice@example.org", Claims: map[string]any{"groups": []string{"staff", "matrix"}, "sid": "session-alice"}}

// start runs a provider with alice, and a server that signs in with it;
// edit adjusts the provider's settings.
func start(t *testing.T, edit ...func(*config.Provider)) (*oidctest.Provider, *testserver.Server) {
	t.Helper()
	idp := oidctest.Start(t, oidctest.Client{ID: clientID, Secret: clientSecret,
		RedirectURIs: []string{"http://127.0.0.1:*" + sso.CallbackPath}})
	idp.AddUser(alice)
	srv := testserver.Start(t, func(c *config.Config) {
		p := config.Provider{ID: "corp", Name: "Corp", Issuer: idp.URL, ClientID: clientID, ClientSecret: clientSecret,
			CreateAccounts: true, DisplayNameClaim: "name"}
		for _, e := range edit {
			e(&p)
		}
		c.SSO.Providers = []config.Provider{p}
		c.SSO.ClientRedirects = []string{"http://app.test/"}
	})
	return idp, srv
}

func loginURL(srv *testserver.Server, redirect string) string {
	return srv.URL + "/_matrix/client/v3/login/sso/redirect/corp?redirectUrl=" + url.QueryEscape(redirect)
}

// signIn signs in at the provider from the server's redirect and returns
// the login token the server handed the client.
func signIn(t *testing.T, idp *oidctest.Provider, srv *testserver.Server, u oidctest.User) string {
	t.Helper()
	res := idp.SignIn(t, nil, loginURL(srv, app), u.Username, u.Password)
	defer res.Body.Close()
	if res.StatusCode != http.StatusFound {
		body, _ := io.ReadAll(res.Body)
		t.Fatalf("sign-in ended with %d: %s", res.StatusCode, body)
	}
	to, err := url.Parse(res.Header.Get("Location"))
	if err != nil || !strings.HasPrefix(to.String(), app+"?") {
		t.Fatalf("sent to %q, want %s", res.Header.Get("Location"), app)
	}
	return to.Query().Get("loginToken")
}

func loginWithToken(t *testing.T, srv *testserver.Server, token string) *testserver.Client {
	t.Helper()
	res := srv.Anon().MustDo(t, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.token", "token": token}, 200)
	return srv.As(res.Get("access_token").Str)
}

func TestLoginFlows(t *testing.T) {
	_, srv := start(t)
	flows := srv.Anon().MustDo(t, "GET", "/_matrix/client/v3/login", nil, 200).Get("flows")
	if got := flows.Get("#.type").Raw; got != `["m.login.password","m.login.sso","m.login.token"]` {
		t.Fatalf("flows %s", got)
	}
	if got := flows.Get(`1.identity_providers`).Raw; got != `[{"id":"corp","name":"Corp"}]` {
		t.Fatalf("identity providers %s", got)
	}
	plain := testserver.Start(t, func(c *config.Config) { c.SSO.PasswordLogin = false })
	if got := plain.Anon().MustDo(t, "GET", "/_matrix/client/v3/login", nil, 200).Get("flows").Raw; got != `[]` {
		t.Fatalf("no password, no providers: flows %s", got)
	}
	plain.Register(t, "bob")
	plain.Anon().MustFail(t, "POST", "/_matrix/client/v3/login", testserver.PasswordAuth("bob"), 400, "M_UNKNOWN")
	plain.Anon().MustFail(t, "GET", "/_matrix/client/v3/login/sso/redirect?redirectUrl=http://app.test/", nil, 404, "M_NOT_FOUND")
}

// A first sign-in makes the account, named by the provider's username,
// with the provider's display name; the login token works once.
func TestSignInCreatesAccount(t *testing.T) {
	idp, srv := start(t)
	token := signIn(t, idp, srv, alice)
	c := loginWithToken(t, srv, token)
	if who := c.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200).Get("user_id").Str; who != "@alice:test.local" {
		t.Fatalf("signed in as %s", who)
	}
	if dn := c.MustDo(t, "GET", "/_matrix/client/v3/profile/@alice:test.local/displayname", nil, 200).Get("displayname").Str; dn != "Alice Smith" {
		t.Fatalf("display name %q", dn)
	}
	srv.Anon().MustFail(t, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.token", "token": token}, 403, "M_FORBIDDEN")
	c.MustDo(t, "GET", "/_matrix/client/v3/sync?timeout=0", nil, 200)

	// The second sign-in finds the same account.
	c2 := loginWithToken(t, srv, signIn(t, idp, srv, alice))
	if who := c2.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200).Get("user_id").Str; who != "@alice:test.local" {
		t.Fatalf("second sign-in as %s", who)
	}
	admin := srv.RegisterAdmin(t, "admin")
	ids := admin.MustDo(t, "GET", "/_synapse/admin/v2/users/@alice:test.local", nil, 200).Get("external_ids").Raw
	if ids != `[{"auth_provider":"corp","external_id":"sub-alice"}]` {
		t.Fatalf("external_ids %s", ids)
	}
	if u := admin.MustDo(t, "GET", "/_synapse/admin/v1/auth_providers/corp/users/sub-alice", nil, 200).Get("user_id").Str; u != "@alice:test.local" {
		t.Fatalf("user by external ID %s", u)
	}
	admin.MustFail(t, "GET", "/_synapse/admin/v1/auth_providers/corp/users/sub-nobody", nil, 404, "M_NOT_FOUND")
}

// A client URL the configuration does not trust gets its token only after
// the user confirmed it; URLs a browser would run on this page are refused.
func TestConfirmationPage(t *testing.T) {
	idp, srv := start(t)
	res := idp.SignIn(t, nil, loginURL(srv, "https://elsewhere.example/cb?x=1"), alice.Username, alice.Password)
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.Contains(string(body), "elsewhere.example") ||
		!strings.Contains(string(body), `href="https://elsewhere.example/cb?loginToken=`) {
		t.Fatalf("confirmation page: %d %s", res.StatusCode, body)
	}
	if res.Header.Get("X-Frame-Options") != "DENY" || res.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("confirmation page headers %v", res.Header)
	}
	// Trusted is scheme, host and path: a longer host name or a user part
	// is another site, and gets the confirmation page.
	for _, lookalike := range []string{"http://app.test.evil.example/", "http://app.test@evil.example/", "https://app.test/"} {
		res := idp.SignIn(t, nil, loginURL(srv, lookalike), alice.Username, alice.Password)
		res.Body.Close()
		if res.StatusCode != 200 {
			t.Fatalf("%s got the token without confirmation: %d %s", lookalike, res.StatusCode, res.Header.Get("Location"))
		}
	}
	for _, bad := range []string{"javascript:alert(1)//", "data:text/html,hi", "/relative", "https://x.example/#frag"} {
		srv.Anon().MustFail(t, "GET", "/_matrix/client/v3/login/sso/redirect/corp?redirectUrl="+url.QueryEscape(bad), nil, 400, "M_INVALID_PARAM")
	}
	srv.Anon().MustFail(t, "GET", "/_matrix/client/v3/login/sso/redirect/corp", nil, 400, "M_MISSING_PARAM")
	srv.Anon().MustFail(t, "GET", "/_matrix/client/v3/login/sso/redirect/nope?redirectUrl="+url.QueryEscape(app), nil, 404, "M_NOT_FOUND")
}

// A callback with an unknown state, or one already used, or a code used
// before, or brought to another browser than the one that began the
// sign-in, signs no one in.
func TestCallbackRefusals(t *testing.T) {
	idp, srv := start(t)
	browser := oidctest.NewBrowser()
	callback := providerCallback(t, idp, srv, browser)
	q := callback.Query()
	srv.Anon().MustFail(t, "GET", sso.CallbackPath+"?state=forged&code="+url.QueryEscape(q.Get("code")), nil, 403, "M_FORBIDDEN")
	srv.Anon().MustFail(t, "GET", sso.CallbackPath+"?code=x", nil, 400, "M_MISSING_PARAM")
	// Someone else's browser, sent the callback URL: refused, and the
	// sign-in is used up.
	other := providerCallback(t, idp, srv, browser)
	if res := oidctest.NewBrowser().Get(t, other.String()); res.StatusCode != 403 {
		t.Fatalf("callback in another browser: %d", res.StatusCode)
	}
	if res := browser.Get(t, other.String()); res.StatusCode != 403 {
		t.Fatalf("callback after another browser used it: %d", res.StatusCode)
	}
	// The real callback, in the browser that began it, works once.
	callback = providerCallback(t, idp, srv, browser)
	q = callback.Query()
	if res := browser.Get(t, callback.String()); res.StatusCode != 302 {
		t.Fatalf("callback: %d", res.StatusCode)
	}
	if res := browser.Get(t, callback.String()); res.StatusCode != 403 {
		t.Fatalf("callback again: %d", res.StatusCode)
	}
	// Its code, replayed with a state of a new sign-in, is refused by the
	// provider (and the PKCE verifier would not match).
	fresh := providerCallback(t, idp, srv, browser)
	if res := browser.Get(t, srv.URL+sso.CallbackPath+"?state="+url.QueryEscape(fresh.Query().Get("state"))+"&code="+url.QueryEscape(q.Get("code"))); res.StatusCode != 403 {
		t.Fatalf("a used code: %d", res.StatusCode)
	}
	// A provider's refusal is the user's refusal.
	fresh = providerCallback(t, idp, srv, browser)
	if res := browser.Get(t, srv.URL+sso.CallbackPath+"?state="+url.QueryEscape(fresh.Query().Get("state"))+"&error=access_denied"); res.StatusCode != 403 {
		t.Fatalf("the provider's refusal: %d", res.StatusCode)
	}
}

// providerCallback signs alice in at the provider and returns the URL it
// sends the browser back to, unvisited.
func providerCallback(t *testing.T, idp *oidctest.Provider, srv *testserver.Server, b *oidctest.Browser) *url.URL {
	t.Helper()
	u := idp.Authorize(t, b, loginURL(srv, app), alice.Username, alice.Password)
	if u.Path != sso.CallbackPath {
		t.Fatalf("provider sent the browser to %q", u)
	}
	return u
}

// Who may sign in: the allow rule on a claim; a user the provider no
// longer has; an ID token that is not for this server, or expired, or not
// for this sign-in. None of them leaves an account or a session behind.
func TestSignInRefusals(t *testing.T) {
	idp, srv := start(t, func(p *config.Provider) { p.Allow = &config.ClaimRule{Claim: "groups", Value: "matrix"} })
	admin := srv.RegisterAdmin(t, "admin")
	for _, tc := range []struct {
		name   string
		user   oidctest.User
		status int
		code   string
	}{
		{"not in the allowed group", oidctest.User{ID: "sub-eve", Username: "eve", Password: "pw", Claims: map[string]any{"groups": []string{"staff"}}}, 403, "M_FORBIDDEN"},
		{"no groups at all", oidctest.User{ID: "sub-mallory", Username: "mallory", Password: "pw"}, 403, "M_FORBIDDEN"},
		{"ID token for another client", oidctest.User{ID: "sub-foreign", Username: "foreign", Password: "pw",
			Claims: map[string]any{"groups": "matrix"}, IDToken: func(c map[string]any) { c["aud"] = "someone-else" }}, 403, "M_FORBIDDEN"},
		{"ID token of another issuer", oidctest.User{ID: "sub-issuer", Username: "issuer", Password: "pw",
			Claims: map[string]any{"groups": "matrix"}, IDToken: func(c map[string]any) { c["iss"] = "https://elsewhere.example" }}, 403, "M_FORBIDDEN"},
		{"expired ID token", oidctest.User{ID: "sub-old", Username: "old", Password: "pw",
			Claims: map[string]any{"groups": "matrix"}, IDToken: func(c map[string]any) { c["exp"] = time.Now().Add(-time.Hour).Unix() }}, 403, "M_FORBIDDEN"},
		{"ID token of another sign-in", oidctest.User{ID: "sub-replay", Username: "replay", Password: "pw",
			Claims: map[string]any{"groups": "matrix"}, IDToken: func(c map[string]any) { c["nonce"] = "another-sign-in" }}, 403, "M_FORBIDDEN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idp.AddUser(tc.user)
			res := idp.SignIn(t, nil, loginURL(srv, app), tc.user.Username, tc.user.Password)
			body, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tc.status || gjson.GetBytes(body, "errcode").Str != tc.code {
				t.Fatalf("got %d %s, want %d %s", res.StatusCode, body, tc.status, tc.code)
			}
			admin.MustFail(t, "GET", "/_synapse/admin/v2/users/@"+tc.user.Username+":test.local", nil, 404, "M_NOT_FOUND")
		})
	}
	// Someone the provider removed cannot get past its login page.
	idp.RemoveUser(alice.ID)
	res := idp.SignIn(t, nil, loginURL(srv, app), alice.Username, alice.Password)
	res.Body.Close()
	if res.StatusCode != 200 || !strings.HasPrefix(res.Request.URL.String(), idp.URL) {
		t.Fatalf("a removed user's sign-in ended at %s with %d", res.Request.URL, res.StatusCode)
	}
}

// Without create_accounts, only linked identities sign in: an admin links
// one through the admin API. With link_existing, a first sign-in links
// the account of the same name; without, a taken name gets a number.
func TestLinking(t *testing.T) {
	idp, srv := start(t, func(p *config.Provider) { p.CreateAccounts = false })
	admin := srv.RegisterAdmin(t, "admin")
	res := idp.SignIn(t, nil, loginURL(srv, app), alice.Username, alice.Password)
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Fatalf("unlinked sign-in: %d", res.StatusCode)
	}
	srv.Register(t, "asmith")
	link := map[string]any{"external_ids": []map[string]string{{"auth_provider": "corp", "external_id": alice.ID}}}
	admin.MustDo(t, "PUT", "/_synapse/admin/v2/users/@asmith:test.local", link, 200)
	admin.MustFail(t, "PUT", "/_synapse/admin/v2/users/@admin:test.local", link, 409, "M_UNKNOWN")
	admin.MustFail(t, "PUT", "/_synapse/admin/v2/users/@admin:test.local",
		map[string]any{"external_ids": []map[string]string{{"auth_provider": "elsewhere", "external_id": "x"}}}, 400, "M_INVALID_PARAM")
	admin.MustFail(t, "PUT", "/_synapse/admin/v2/users/@admin:test.local",
		map[string]any{"external_ids": []map[string]string{{"auth_provider": "corp"}}}, 400, "M_INVALID_PARAM")
	c := loginWithToken(t, srv, signIn(t, idp, srv, alice))
	if who := c.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200).Get("user_id").Str; who != "@asmith:test.local" {
		t.Fatalf("linked sign-in as %s", who)
	}
	// Unlinking ends the way in (the sessions stay until logged out).
	admin.MustDo(t, "PUT", "/_synapse/admin/v2/users/@asmith:test.local", map[string]any{"external_ids": []any{}}, 200)
	res = idp.SignIn(t, nil, loginURL(srv, app), alice.Username, alice.Password)
	res.Body.Close()
	if res.StatusCode != 403 {
		t.Fatalf("sign-in after unlinking: %d", res.StatusCode)
	}

	idp, srv = start(t, func(p *config.Provider) { p.LinkExisting = true })
	srv.Register(t, "alice")
	c = loginWithToken(t, srv, signIn(t, idp, srv, alice))
	if who := c.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200).Get("user_id").Str; who != "@alice:test.local" {
		t.Fatalf("link_existing: signed in as %s", who)
	}

	idp, srv = start(t)
	srv.Register(t, "alice")
	c = loginWithToken(t, srv, signIn(t, idp, srv, alice))
	if who := c.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200).Get("user_id").Str; who != "@alice2:test.local" {
		t.Fatalf("taken localpart: signed in as %s", who)
	}
}

// The provider's back-channel logout ends a session's devices, or, with
// no session named, every device of the account.
func TestBackchannelLogout(t *testing.T) {
	idp, srv := start(t)
	c1 := loginWithToken(t, srv, signIn(t, idp, srv, alice))
	other := alice
	other.Claims = map[string]any{"sid": "another-session"}
	idp.AddUser(other)
	c2 := loginWithToken(t, srv, signIn(t, idp, srv, other))
	password := srv.Register(t, "bob")

	logout := func(token string, status int) {
		t.Helper()
		res, err := http.PostForm(srv.URL+sso.BackchannelLogoutPath, url.Values{"logout_token": {token}})
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode != status {
			t.Fatalf("logout: %d, want %d", res.StatusCode, status)
		}
	}
	logout("not-a-jwt", 400)
	logout(idp.LogoutToken(t, "another-client", alice.ID, ""), 400)
	forged := oidctest.Start(t).LogoutToken(t, clientID, alice.ID, "")
	logout(forged, 400)
	c1.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200)

	logout(idp.LogoutToken(t, clientID, alice.ID, "another-session"), 200)
	c2.MustFail(t, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	c1.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200)

	logout(idp.LogoutToken(t, clientID, "", "session-alice"), 200)
	c1.MustFail(t, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")

	c3 := loginWithToken(t, srv, signIn(t, idp, srv, alice))
	logout(idp.LogoutToken(t, clientID, alice.ID, ""), 200)
	c3.MustFail(t, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	logout(idp.LogoutToken(t, clientID, "sub-nobody", ""), 200)
	password.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200)
}

// An account that signs in at a provider confirms it is them the same
// way: user-interactive auth offers m.login.sso, completed through the
// fallback page.
func TestUIAWithSSO(t *testing.T) {
	idp, srv := start(t)
	c := loginWithToken(t, srv, signIn(t, idp, srv, alice))
	dev := c.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200).Get("device_id").Str
	del := "/_matrix/client/v3/devices/" + dev
	res := c.MustDo(t, "DELETE", del, map[string]any{}, 401)
	if got := res.Get("flows").Raw; got != `[{"stages":["m.login.sso"]}]` {
		t.Fatalf("flows %s", got)
	}
	session := res.Get("session").Str
	// Retrying before the stage is done asks again.
	c.MustDo(t, "DELETE", del, map[string]any{"auth": map[string]any{"session": session}}, 401)
	// The fallback page names the account and what is confirmed; its
	// form goes to the provider.
	fallback := srv.URL + "/_matrix/client/v3/auth/m.login.sso/fallback/web?session=" + url.QueryEscape(session)
	browser := oidctest.NewBrowser()
	page := browser.Get(t, fallback)
	body, _ := io.ReadAll(page.Body)
	form := regexp.MustCompile(`name="form" value="([^"]+)"`).FindStringSubmatch(string(body))
	if page.StatusCode != 200 || form == nil || !strings.Contains(string(body), "@alice:test.local") || !strings.Contains(string(body), "sign out a session") {
		t.Fatalf("fallback page: %d %s", page.StatusCode, body)
	}
	// A form from elsewhere (no cookie of the page's) goes nowhere.
	if res := oidctest.NewBrowser().Do(t, "POST", fallback, url.Values{"session": {session}, "form": {form[1]}, "idp": {"corp"}}); res.StatusCode != 403 {
		t.Fatalf("a forged form: %d", res.StatusCode)
	}
	started := browser.Do(t, "POST", fallback, url.Values{"session": {session}, "form": {form[1]}, "idp": {"corp"}})
	if started.StatusCode != 302 || !strings.HasPrefix(started.Header.Get("Location"), idp.URL) {
		t.Fatalf("fallback form: %d to %q", started.StatusCode, started.Header.Get("Location"))
	}
	page = idp.SignIn(t, browser, started.Header.Get("Location"), alice.Username, alice.Password)
	body, _ = io.ReadAll(page.Body)
	page.Body.Close()
	if page.StatusCode != 200 || !strings.Contains(string(body), "authDone") {
		t.Fatalf("fallback ended with %d: %s", page.StatusCode, body)
	}
	// Someone else cannot use the session alice completed.
	bobAtIdP := oidctest.User{ID: "sub-bob", Username: "bob", Password: "bob-at-idp"}
	idp.AddUser(bobAtIdP)
	bob := loginWithToken(t, srv, signIn(t, idp, srv, bobAtIdP))
	bobDev := bob.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200).Get("device_id").Str
	res = bob.MustDo(t, "DELETE", "/_matrix/client/v3/devices/"+bobDev, map[string]any{"auth": map[string]any{"type": "m.login.sso", "session": session}}, 401)
	if res.Get("session").Str == session {
		t.Fatal("bob was handed alice's session")
	}
	c.MustDo(t, "DELETE", del, map[string]any{"auth": map[string]any{"session": session}}, 200)
	c.MustFail(t, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	// A password account gets the password stage, and the SSO one only
	// if it is linked.
	carol := srv.Register(t, "carol")
	carolDev := carol.MustDo(t, "GET", "/_matrix/client/v3/account/whoami", nil, 200).Get("device_id").Str
	res = carol.MustDo(t, "DELETE", "/_matrix/client/v3/devices/"+carolDev, map[string]any{}, 401)
	if got := res.Get("flows").Raw; got != `[{"stages":["m.login.password"]}]` {
		t.Fatalf("password account's flows %s", got)
	}
	srv.Anon().MustFail(t, "GET", "/_matrix/client/v3/auth/m.login.sso/fallback/web", nil, 400, "M_MISSING_PARAM")
}

// With check_at_refresh, a session's refresh asks the provider again once
// the last answer is old enough: a disabled account, or one that left the
// allowed group, ends all the person's sessions.
func TestCheckAtRefresh(t *testing.T) {
	for _, tc := range []struct {
		name  string
		leave func(idp *oidctest.Provider)
	}{
		{"disabled at the provider", func(idp *oidctest.Provider) { idp.DisableUser(alice.ID) }},
		{"left the allowed group", func(idp *oidctest.Provider) {
			moved := alice
			moved.Claims = map[string]any{"groups": []string{"staff"}, "sid": "session-alice"}
			idp.AddUser(moved)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			idp, srv := start(t, func(p *config.Provider) {
				p.CheckAtRefresh = config.Duration(time.Minute)
				p.Scopes = []string{"openid", "profile", "email", "offline_access"}
				p.Allow = &config.ClaimRule{Claim: "groups", Value: "matrix"}
			})
			res := srv.Anon().MustDo(t, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.token",
				"token": signIn(t, idp, srv, alice), "refresh_token": true}, 200)
			other := loginWithToken(t, srv, signIn(t, idp, srv, alice))
			refresh := func(token string) (int, gjson.Result) {
				return srv.Anon().Do(t, "POST", "/_matrix/client/v3/refresh", map[string]any{"refresh_token": token})
			}
			// Within the minute, nothing is asked; after it, the provider
			// vouches again.
			code, r := refresh(res.Get("refresh_token").Str)
			if code != 200 {
				t.Fatalf("refresh: %d %s", code, r.Raw)
			}
			srv.Clock.Advance(2 * time.Minute)
			if code, r = refresh(r.Get("refresh_token").Str); code != 200 {
				t.Fatalf("refresh after the provider was asked: %d %s", code, r.Raw)
			}
			tc.leave(idp)
			srv.Clock.Advance(2 * time.Minute)
			code, gone := refresh(r.Get("refresh_token").Str)
			if code != 401 || gone.Get("errcode").Str != "M_UNKNOWN_TOKEN" {
				t.Fatalf("refresh after leaving: %d %s", code, gone.Raw)
			}
			other.MustFail(t, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
		})
	}
}
