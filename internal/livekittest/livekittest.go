// Package livekittest runs a real LiveKit server on loopback for tests:
// the binary .ci/run builds (livekit-server v1.9.11), found through
// $REDOUBT_LIVEKIT or as livekit-server on the PATH.
package livekittest

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Server is a running LiveKit server.
type Server struct {
	// URL is its WebSocket URL; HTTP is the same address over http.
	URL, HTTP   string
	Key, Secret string
}

// Start runs a LiveKit server that opens rooms only through its API
// (room.auto_create off), or skips the test without the binary, unless
// REDOUBT_REQUIRE_LIVEKIT is set.
func Start(t testing.TB) *Server {
	t.Helper()
	bin := os.Getenv("REDOUBT_LIVEKIT")
	if bin == "" {
		bin, _ = exec.LookPath("livekit-server")
	}
	if bin == "" {
		if os.Getenv("REDOUBT_REQUIRE_LIVEKIT") != "" {
			t.Fatal("no LiveKit server (set REDOUBT_LIVEKIT), and REDOUBT_REQUIRE_LIVEKIT is set")
		}
		t.Skip("no LiveKit server (set REDOUBT_LIVEKIT to livekit-server v1.9.11): skipped")
	}
	s := &Server{Key: "devkey", Secret: "redoubt-test-secret-of-32-bytes-or-more"}
	port, tcp := freePort(t), freePort(t)
	udp := 40000 + (port % 20000)
	cfg := fmt.Sprintf(`port: %d
bind_addresses: [127.0.0.1]
rtc:
  tcp_port: %d
  port_range_start: %d
  port_range_end: %d
  use_external_ip: false
keys:
  %s: %s
room:
  auto_create: false
logging:
  level: warn
`, port, tcp, udp, udp+20, s.Key, s.Secret)
	path := filepath.Join(t.TempDir(), "livekit.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config", path)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	s.HTTP = fmt.Sprintf("http://127.0.0.1:%d", port)
	s.URL = fmt.Sprintf("ws://127.0.0.1:%d", port)
	for deadline := time.Now().Add(20 * time.Second); ; {
		if res, err := http.Get(s.HTTP); err == nil {
			res.Body.Close()
			return s
		}
		if time.Now().After(deadline) {
			t.Fatal("the LiveKit server did not start")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
