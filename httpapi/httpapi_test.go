package httpapi

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// A client that hangs up is not a server error: no ERROR line in the log,
// and 499, not 500, in the metrics; a real failure still is one.
func TestClientHangUp(t *testing.T) {
	var log bytes.Buffer
	var statuses []int
	a := &API{Log: slog.New(slog.NewTextHandler(&log, &slog.HandlerOptions{Level: slog.LevelDebug})), MaxBody: 1 << 10,
		Observe: func(_, _ string, status int, _ time.Duration) { statuses = append(statuses, status) }}
	h := a.Public(func(r *http.Request) Response {
		<-r.Context().Done()
		return Fail(r.Context().Err()) // what a database call reports
	})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/x", nil).WithContext(ctx))
	if strings.Contains(log.String(), "level=ERROR") || len(statuses) != 1 || statuses[0] != StatusClientClosed {
		t.Fatalf("hang-up: statuses %v, log:\n%s", statuses, log.String())
	}
	// The same error while the client still waits is a failure.
	failing := a.Public(func(*http.Request) Response { return Fail(context.Canceled) })
	rec := httptest.NewRecorder()
	failing.ServeHTTP(rec, httptest.NewRequest("GET", "/x", nil))
	if rec.Code != 500 || !strings.Contains(log.String(), "level=ERROR") || statuses[1] != 500 {
		t.Fatalf("a real failure: %d, statuses %v", rec.Code, statuses)
	}
}
