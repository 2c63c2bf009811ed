package adminapi_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/browsertest"
	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

// browser starts headless Chromium, or skips the test without it.
func browser(t *testing.T) context.Context { return browsertest.Start(t) }

// artifacts is where screenshots go: $ARTIFACTS_DIR (CI keeps it) or a
// temporary directory.
func artifacts(t *testing.T) string {
	dir := os.Getenv("ARTIFACTS_DIR")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "redoubt-artifacts")
	}
	dir = filepath.Join(dir, "admin-panel")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func screenshot(t *testing.T, dir, name string) chromedp.Action {
	return chromedp.ActionFunc(func(ctx context.Context) error {
		var png []byte
		// Quality 100 makes a PNG; below it, a JPEG.
		if err := chromedp.FullScreenshot(&png, 100).Do(ctx); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
	})
}

// An admin logs in to the panel, sees who signs in with an identity
// provider and logs one of them out everywhere, creates a user (who then
// logs in through the client API), deactivates them with erase, and their
// login fails; each page is screenshotted, also at a phone's size.
func TestPanelInBrowser(t *testing.T) {
	ctx := browser(t)
	srv := ts.Start(t, func(c *config.Config) {
		c.SSO.Providers = []config.Provider{{ID: "corp", Issuer: "https://login.example", ClientID: "redoubt"}}
	})
	root := srv.RegisterAdmin(t, "root")
	owner := srv.Register(t, "owner")
	doomed := owner.CreateRoom(t, map[string]any{"name": "Doomed"})
	root.MustDo(t, "PUT", "/_synapse/admin/v2/users/@owner:test.local",
		map[string]any{"external_ids": []map[string]string{{"auth_provider": "corp", "external_id": "sub-owner"}}}, 200)
	ownerRow := `tr[data-user="@owner:test.local"]`
	dir := artifacts(t)
	newUser := "@newhire:test.local"
	row := `tr[data-user="` + newUser + `"]`
	var status, dialogText, eraseText, identities string
	err := chromedp.Run(ctx,
		chromedp.Navigate(srv.URL+"/admin"),
		chromedp.WaitVisible("#login-user", chromedp.ByID),
		screenshot(t, dir, "01-login"),
		chromedp.SendKeys("#login-user", "root", chromedp.ByID),
		chromedp.SendKeys("#login-password", ts.Password("root"), chromedp.ByID),
		chromedp.Click("#login-submit", chromedp.ByID),
		chromedp.WaitVisible(`tr[data-user="@root:test.local"]`),
		chromedp.WaitVisible(ownerRow+" td.identities .identity"),
		chromedp.Text(ownerRow+" td.identities", &identities),
		screenshot(t, dir, "02-users"),
		chromedp.Click(ownerRow+" button.logout"),
		chromedp.WaitVisible("#confirm", chromedp.ByID),
		chromedp.Click("#confirm-ok", chromedp.ByID),
		chromedp.Poll(`document.getElementById("status").textContent.includes("logged out of 1 device")`, nil),
		chromedp.SendKeys("#new-user-name", "newhire", chromedp.ByID),
		chromedp.SendKeys("#new-user-password", "newhire-pass-123", chromedp.ByID),
		chromedp.Click("#new-user-submit", chromedp.ByID),
		chromedp.WaitVisible(row),
		chromedp.Text("#status", &status, chromedp.ByID),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "Created "+newUser) {
		t.Fatalf("status after create: %q", status)
	}
	if !strings.Contains(identities, "corp: sub-owner") {
		t.Fatalf("the owner's identities: %q", identities)
	}
	owner.MustFail(t, "GET", "/_matrix/client/v3/account/whoami", nil, 401, "M_UNKNOWN_TOKEN")
	if code, _ := login(srv, t, "newhire", "newhire-pass-123"); code != 200 {
		t.Fatalf("the new user cannot log in: %d", code)
	}
	err = chromedp.Run(ctx,
		chromedp.Click(row+" button.deactivate"),
		chromedp.WaitVisible("#confirm", chromedp.ByID),
		chromedp.Text("#confirm-text", &dialogText, chromedp.ByID),
		chromedp.Text("#confirm-erase-label", &eraseText, chromedp.ByID),
		chromedp.Click("#confirm-erase", chromedp.ByID),
		screenshot(t, dir, "03-deactivate-confirm"),
		chromedp.Click("#confirm-ok", chromedp.ByID),
		chromedp.WaitNotPresent(row),
		chromedp.Text("#status", &status, chromedp.ByID),
	)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(dialogText, newUser) {
		t.Fatalf("the confirmation does not name the user: %q", dialogText)
	}
	// The erase option says what goes, and what stays with the rooms.
	if !strings.Contains(eraseText, "messages, profile, files") || !strings.Contains(eraseText, "keep their name, topic") {
		t.Fatalf("the erase option says %q", eraseText)
	}
	if !strings.Contains(status, "deactivated and their data erased") {
		t.Fatalf("status after deactivate: %q", status)
	}
	if code, _ := login(srv, t, "newhire", "newhire-pass-123"); code != 403 {
		t.Fatalf("the deactivated user logs in: %d", code)
	}
	var erased int
	if err := srv.DB.RawRead(t.Context(), `SELECT erased FROM users WHERE user_id = '@newhire:test.local'`, &erased); err != nil || erased != 1 {
		t.Fatalf("erased = %d (%v)", erased, err)
	}

	// The other pages, a token created on the way, and a phone-sized view.
	var tokenRows, roomsTitle, summary, audit string
	var blockTicked bool
	err = chromedp.Run(ctx,
		chromedp.Click(`nav button[data-view="tokens"]`),
		chromedp.SendKeys("#new-token-uses", "5", chromedp.ByID),
		chromedp.Click(`#new-token button[type="submit"]`),
		chromedp.WaitVisible("#token-rows tr"),
		chromedp.Text("#token-rows", &tokenRows, chromedp.ByID),
		screenshot(t, dir, "04-tokens"),
		chromedp.Click(`nav button[data-view="rooms"]`),
		chromedp.WaitVisible("#view-rooms", chromedp.ByID),
		chromedp.Text("#room-page", &roomsTitle, chromedp.ByID),
		screenshot(t, dir, "05-rooms"),
		// Deleting a room offers blocking, off unless ticked, as Synapse.
		chromedp.Click(`tr[data-room="`+doomed+`"] button.delete`),
		chromedp.WaitVisible("#confirm-block-label", chromedp.ByID),
		chromedp.Evaluate(`document.getElementById("confirm-block").checked`, &blockTicked),
		chromedp.Click("#confirm-ok", chromedp.ByID),
		chromedp.WaitNotPresent(`tr[data-room="`+doomed+`"]`),
		chromedp.Click(`nav button[data-view="summary"]`),
		chromedp.WaitVisible("#summary dt"),
		chromedp.Text("#summary", &summary, chromedp.ByID),
		chromedp.Click("#export-start", chromedp.ByID),
		chromedp.Poll(`document.getElementById("export-status").textContent.startsWith("exported")`, nil, chromedp.WithPollingTimeout(30*time.Second)),
		screenshot(t, dir, "06-instance"),
		chromedp.Click(`nav button[data-view="audit"]`),
		chromedp.WaitVisible("#audit-rows tr"),
		chromedp.Text("#audit-rows", &audit, chromedp.ByID),
		screenshot(t, dir, "07-audit"),
		chromedp.EmulateViewport(390, 844),
		chromedp.Click(`nav button[data-view="users"]`),
		chromedp.WaitVisible(`tr[data-user="@root:test.local"]`),
		screenshot(t, dir, "08-users-phone"),
	)
	if err != nil {
		t.Fatal(err)
	}
	if blockTicked {
		t.Error("the delete dialog had block ticked")
	}
	if res := root.MustDo(t, "GET", "/_synapse/admin/v1/rooms/"+esc(doomed)+"/block", nil, 200); res.Get("block").Bool() {
		t.Errorf("the panel blocked a room it was only asked to delete: %s", res.Raw)
	}
	root.MustFail(t, "GET", "/_synapse/admin/v1/rooms/"+esc(doomed), nil, 404, "M_NOT_FOUND")
	if !strings.Contains(tokenRows, "5") || !strings.Contains(summary, "test.local") ||
		!strings.Contains(audit, "deactivate_user") || !strings.Contains(audit, "create_user") {
		t.Fatalf("tokens %q, summary %q, audit %q", tokenRows, summary, audit)
	}
	t.Logf("screenshots in %s", dir)
}

// The panel's pages carry a strict Content-Security-Policy, and the token
// is kept in sessionStorage only.
func TestPanelHeaders(t *testing.T) {
	srv := ts.Start(t)
	for _, path := range []string{"/admin/", "/admin/app.js", "/admin/app.css"} {
		res, err := srv.Anon().Raw("GET", path)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		csp := res.Header.Get("Content-Security-Policy")
		if res.StatusCode != 200 || !strings.Contains(csp, "default-src 'none'") || !strings.Contains(csp, "script-src 'self'") ||
			strings.Contains(csp, "unsafe-inline") || res.Header.Get("X-Content-Type-Options") != "nosniff" {
			t.Fatalf("%s: %d, CSP %q", path, res.StatusCode, csp)
		}
	}
	js, _ := os.ReadFile("panel/app.js")
	if strings.Contains(string(js), "localStorage") || strings.Contains(string(js), "document.cookie") {
		t.Fatal("the panel keeps its token beyond the session")
	}
}
