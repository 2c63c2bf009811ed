// Package browsertest runs headless Chromium for tests that need a real
// browser: the admin panel, sign-in redirects.
package browsertest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Start starts headless Chromium (Debian's chromium; .ci/run installs
// it). Without it the browser tests are skipped, not failed, so that the
// rest of the suite runs on machines without a browser.
func Start(t *testing.T) context.Context {
	t.Helper()
	path := os.Getenv("CHROMIUM")
	if path == "" {
		for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
			if p, err := exec.LookPath(name); err == nil {
				path = p
				break
			}
		}
	}
	if path == "" {
		if os.Getenv("REDOUBT_REQUIRE_BROWSER") != "" {
			t.Fatal("no chromium found, and REDOUBT_REQUIRE_BROWSER is set")
		}
		t.Skip("no chromium found (set CHROMIUM): browser tests skipped")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox, chromedp.DisableGPU,
		chromedp.Flag("disable-background-networking", true), chromedp.WindowSize(1280, 900))
	// Chromium now and then dies while starting (its crash handler, on a
	// busy machine): a start is tried three times before the test fails.
	var lastErr error
	for range 3 {
		actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
		// Newer Chromium sends DOM events this chromedp does not know; they
		// are harmless, so they go to the test log rather than standard error.
		ctx, cancel2 := chromedp.NewContext(actx, chromedp.WithErrorf(t.Logf))
		if lastErr = chromedp.Run(ctx); lastErr == nil {
			t.Cleanup(cancel)
			t.Cleanup(cancel2)
			ctx, cancel3 := context.WithTimeout(ctx, 90*time.Second)
			t.Cleanup(cancel3)
			return ctx
		}
		cancel2()
		cancel()
	}
	t.Fatalf("chromium would not start: %v", lastErr)
	return nil
}

// Steps runs browser actions one by one, each within 20 seconds; a step
// that fails ends the test with where the browser was and what it showed.
func Steps(t *testing.T, ctx context.Context, steps ...chromedp.Action) {
	t.Helper()
	for i, step := range steps {
		stepCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
		err := chromedp.Run(stepCtx, step)
		cancel()
		if err != nil {
			var page, at string
			_ = chromedp.Run(ctx, chromedp.Location(&at), chromedp.Text(`body`, &page))
			t.Fatalf("step %d: %v, at %s: %.500s", i, err, at, page)
		}
	}
}
