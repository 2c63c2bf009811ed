package oauthserver_test

import (
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/redoubt-systems/redoubt/internal/browsertest"
)

// In a real browser: the app sends it to the authorization server, the
// user picks the organisation's provider, signs in on its page, comes back
// and allows the app, and the app's page receives the code, which the app
// exchanges for a session.
func TestBrowserAuthorization(t *testing.T) {
	ctx := browsertest.Start(t)
	_, srv := withProvider(t, nil)
	app := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><p id="code">%s</p><p id="state">%s</p>`,
			html.EscapeString(r.URL.Query().Get("code")), html.EscapeString(r.URL.Query().Get("state")))
	}))
	t.Cleanup(app.Close)
	b := newBrowser(t, srv)
	// This app's own registration, with its real address.
	code, reg := b.register(map[string]any{"client_name": "Browser app", "client_uri": app.URL + "/",
		"redirect_uris": []string{app.URL + "/callback"}, "application_type": "web"})
	if code != 201 {
		t.Fatalf("registration: %d %s", code, reg.Raw)
	}
	verifier, challenge := pkce()
	q := url.Values{"response_type": {"code"}, "client_id": {reg.Get("client_id").Str}, "redirect_uri": {app.URL + "/callback"},
		"scope": {"openid urn:matrix:client:api:* urn:matrix:client:device:BROWSER"}, "state": {"st4te"},
		"code_challenge": {challenge}, "code_challenge_method": {"S256"}, "response_mode": {"query"}}
	var consent, gotCode, gotState string
	browsertest.Steps(t, ctx,
		chromedp.Navigate(b.issuer+"authorize?"+q.Encode()),
		chromedp.WaitVisible(`a.button`, chromedp.ByQuery),
		chromedp.Click(`a.button`, chromedp.ByQuery),
		chromedp.WaitVisible(`#username`),
		chromedp.SendKeys(`#username`, oidcAlice.Username),
		chromedp.SendKeys(`#password`, oidcAlice.Password),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`#allow`),
		chromedp.Text(`body`, &consent),
		chromedp.Click(`#allow`),
		chromedp.WaitVisible(`#code`),
		chromedp.Text(`#code`, &gotCode),
		chromedp.Text(`#state`, &gotState),
	)
	if !strings.Contains(consent, "Browser app") || !strings.Contains(consent, "@alice:test.local") {
		t.Fatalf("consent page: %q", consent)
	}
	if gotState != "st4te" || gotCode == "" {
		t.Fatalf("the app got code %q, state %q", gotCode, gotState)
	}
	b.clientID = reg.Get("client_id").Str
	status, tok := b.token(url.Values{"grant_type": {"authorization_code"}, "code": {gotCode}, "redirect_uri": {app.URL + "/callback"}, "code_verifier": {verifier}})
	if status != 200 {
		t.Fatalf("token: %d %s", status, tok.Raw)
	}
	if _, who := whoami(t, srv, tok.Get("access_token").Str); who.Get("device_id").Str != "BROWSER" {
		t.Fatalf("whoami %s", who.Raw)
	}
}
