// Package jstest drives Redoubt with the official matrix-js-sdk (from npm)
// the way Element does; see element-flow.mjs.
package jstest

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

func TestElementFlowWithMatrixJSSDK(t *testing.T) {
	srv := ts.Start(t)
	srv.Register(t, "alice")
	srv.Register(t, "bob")
	run(t, "element-flow.mjs", srv.URL, "alice", ts.Password("alice"), "bob")
}

// Sign-in through Matrix's OAuth 2.0 API with the SDK's OIDC helpers, then
// an encrypted message from that session.
func TestOIDCSignInWithMatrixJSSDK(t *testing.T) {
	srv := ts.Start(t)
	srv.Register(t, "alice")
	srv.Register(t, "bob")
	run(t, "oidc-flow.mjs", srv.URL, "alice", ts.Password("alice"), "bob", ts.Password("bob"))
}

// run runs a script with node, or skips the test without node and the SDK.
func run(t *testing.T, script string, args ...string) {
	t.Helper()
	node, err := exec.LookPath("node")
	_, modErr := os.Stat("node_modules/matrix-js-sdk")
	if err != nil || modErr != nil {
		if os.Getenv("REDOUBT_REQUIRE_JS") != "" {
			t.Fatalf("node or node_modules missing (run npm ci in jstest): %v %v", err, modErr)
		}
		t.Skip("node or jstest/node_modules missing (npm ci --no-audit --no-fund in jstest): skipped")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, append([]string{script}, args...)...).CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("matrix-js-sdk run failed: %v", err)
	}
}
