package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redoubt-systems/redoubt/backup"
)

// The real binary is killed with SIGKILL at random moments while several
// clients write, 20 times over; after each restart every write that was
// answered 200 is there, and the database passes its integrity check.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and kills the binary 20 times")
	}
	bin := buildBinary(t)
	addr := freePort(t)
	cfgPath, dbPath := writeConfig(t, "listen: "+addr+"\nregistration: {open: true}\nrate_limits: {enabled: false}\nlog: {level: error}\n")
	base := "http://" + addr
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "serve", "--config", cfgPath)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitUp(t, http.DefaultClient, base+"/health").Body.Close()
		return cmd
	}
	call := caller(base)
	cmd := start()
	var tokens []string
	for i := range 4 {
		code, res := call("POST", "/_matrix/client/v3/register", "", map[string]any{"username": fmt.Sprintf("w%d", i),
			"password": "long-enough-password", "auth": map[string]any{"type": "m.login.dummy"}})
		if code != 200 {
			t.Fatalf("register: %d %v", code, res)
		}
		tokens = append(tokens, res["access_token"].(string))
	}
	_, res := call("POST", "/_matrix/client/v3/createRoom", tokens[0], map[string]any{"preset": "public_chat"})
	room := res["room_id"].(string)
	for _, tok := range tokens[1:] {
		call("POST", "/_matrix/client/v3/join/"+room, tok, map[string]any{})
	}

	var mu sync.Mutex
	var acked []string
	for round := range 20 {
		ctx, cancel := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w, tok := range tokens {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ctx.Err() == nil; n++ {
					code, res := call("PUT", fmt.Sprintf("/_matrix/client/v3/rooms/%s/send/m.room.message/r%dw%dn%d", room, round, w, n), tok,
						map[string]any{"msgtype": "m.text", "body": fmt.Sprintf("round %d writer %d message %d", round, w, n)})
					if code == 200 {
						mu.Lock()
						acked = append(acked, res["event_id"].(string))
						mu.Unlock()
					}
				}
			}()
		}
		time.Sleep(time.Duration(50+rand.IntN(250)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		cmd.Wait()
		cancel()
		wg.Wait()
		cmd = start()
		mu.Lock()
		for _, id := range acked {
			if code, _ := call("GET", "/_matrix/client/v3/rooms/"+room+"/event/"+id, tokens[0], nil); code != 200 {
				t.Fatalf("round %d: acknowledged event %s lost (%d)", round, id, code)
			}
		}
		mu.Unlock()
	}
	cmd.Process.Signal(syscall.SIGTERM)
	cmd.Wait()
	problems, err := backup.Check(context.Background(), dbPath)
	if err != nil || len(problems) > 0 {
		t.Fatalf("integrity: %v %v", problems, err)
	}
	t.Logf("%d acknowledged writes, all present after 20 kills", len(acked))
}

// caller calls the Client-Server API at base: the status and the JSON
// answer (status 0 if the server did not answer).
func caller(base string) func(method, path, token string, body any) (int, map[string]any) {
	return func(method, path, token string, body any) (int, map[string]any) {
		b, _ := json.Marshal(body)
		req, _ := http.NewRequest(method, base+path, bytes.NewReader(b))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			return 0, nil
		}
		defer res.Body.Close()
		var out map[string]any
		json.NewDecoder(res.Body).Decode(&out)
		return res.StatusCode, out
	}
}

// buildBinary builds the real binary, for tests that run it as a process.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "redoubt")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	return bin
}
