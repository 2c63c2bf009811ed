package sso_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/redoubt-systems/redoubt/internal/browsertest"
)

// A browser signs in as Element Web does: Redoubt sends it to the
// provider, the user signs in on the provider's page, Redoubt asks them to
// confirm the client (whose URL it does not know), and the client's page
// exchanges the login token for a session.
func TestBrowserSignIn(t *testing.T) {
	ctx := browsertest.Start(t)
	_, srv := start(t)
	client := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<!DOCTYPE html><p id="result">signing in</p><script>
const token = new URLSearchParams(location.search).get("loginToken");
fetch(%q + "/_matrix/client/v3/login", {method: "POST", headers: {"Content-Type": "application/json"},
  body: JSON.stringify({type: "m.login.token", token: token, initial_device_display_name: "browser"})})
  .then(r => r.json()).then(b => { document.getElementById("result").textContent = b.user_id || b.errcode; });
</script>`, srv.URL)
	}))
	t.Cleanup(client.Close)

	var confirm, result string
	browsertest.Steps(t, ctx,
		chromedp.Navigate(loginURL(srv, client.URL+"/app")),
		chromedp.WaitVisible(`#username`),
		chromedp.SendKeys(`#username`, alice.Username),
		chromedp.SendKeys(`#password`, alice.Password),
		chromedp.Click(`button[type=submit]`),
		chromedp.WaitVisible(`#continue`),
		chromedp.Text(`body`, &confirm),
		chromedp.Click(`#continue`),
		chromedp.WaitVisible(`#result`),
		chromedp.Poll(`document.getElementById("result") && document.getElementById("result").textContent.startsWith("@")`, nil),
		chromedp.Text(`#result`, &result),
	)
	if !strings.Contains(confirm, "@alice:test.local") || !strings.Contains(confirm, strings.TrimPrefix(client.URL, "http://")) {
		t.Fatalf("confirmation page: %q", confirm)
	}
	if result != "@alice:test.local" {
		t.Fatalf("the client signed in as %q", result)
	}
}
