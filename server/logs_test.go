package server_test

import (
	"bytes"
	"strings"
	"sync"
	"testing"

	ts "github.com/redoubt-systems/redoubt/internal/testserver"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The log, even at debug level, holds no access tokens, passwords or
// message content, also for requests that fail.
func TestLogsHoldNoSecrets(t *testing.T) {
	var log syncBuffer
	srv := ts.StartLogged(t, &log)
	alice := srv.Register(t, "alice")
	login := srv.Login(t, "alice")
	room := alice.CreateRoom(t, nil)
	secret := "log-canary-" + "4e2b"
	alice.Send(t, room, secret)
	alice.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/send/m.room.message/t?access_token="+alice.Token,
		map[string]any{"body": secret}, 200)
	alice.Do(t, "PUT", "/_matrix/client/v3/rooms/"+ts.PathEscape(room)+"/send/m.room.message/bad", `{"body": "`+secret+`"`)
	srv.Anon().Do(t, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": "alice"}, "password": "wrong-" + secret})
	srv.As("rdt_"+secret).Do(t, "GET", "/_matrix/client/v3/account/whoami", nil)
	out := log.String()
	if !strings.Contains(out, "request") {
		t.Fatalf("nothing logged: %q", out)
	}
	for _, s := range []string{alice.Token, login.Token, ts.Password("alice"), secret, strings.TrimPrefix(alice.Token, "rdt_")} {
		if strings.Contains(out, s) {
			t.Fatalf("the log holds %q", s)
		}
	}
}
