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
	node, err := exec.LookPath("node")
	_, modErr := os.Stat("node_modules/matrix-js-sdk")
	if err != nil || modErr != nil {
		if os.Getenv("REDOUBT_REQUIRE_JS") != "" {
			t.Fatalf("node or node_modules missing (run npm ci in jstest): %v %v", err, modErr)
		}
		t.Skip("node or jstest/node_modules missing (npm ci --no-audit --no-fund in jstest): skipped")
	}
	srv := ts.Start(t)
	srv.Register(t, "alice")
	srv.Register(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, node, "element-flow.mjs", srv.URL, "alice", ts.Password("alice"), "bob").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("matrix-js-sdk run failed: %v", err)
	}
}
