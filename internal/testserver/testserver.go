// Package testserver starts a real Redoubt in-process for tests: the real
// router behind httptest, on a real SQLite file in a temporary directory.
package testserver

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/server"
)

// Secret is the shared registration secret of test servers.
const Secret = "test-shared-secret"

// Server is a running test instance.
type Server struct {
	*server.Server
	URL string
	Cfg *config.Config
	// Clock is the server's clock: real time plus what a test advanced it.
	Clock *Clock
	http  *httptest.Server
	// cancelRequests ends the context of the requests being served.
	cancelRequests context.CancelFunc
	t              testing.TB
	logTo          io.Writer
}

// Start runs a server on a fresh database; edit may adjust the configuration.
func Start(t testing.TB, edit ...func(*config.Config)) *Server {
	t.Helper()
	return StartLogged(t, nil, edit...)
}

// StartLogged is Start with the server's log, at debug level, written to w.
func StartLogged(t testing.TB, w io.Writer, edit ...func(*config.Config)) *Server {
	t.Helper()
	cfg := config.Default()
	cfg.ServerName = "test.local"
	cfg.Database = filepath.Join(t.TempDir(), "redoubt.db")
	cfg.RegistrationSharedSecret = Secret
	cfg.RateLimits.Enabled = false
	cfg.Log.Level = "error"
	for _, e := range edit {
		e(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	s := &Server{Cfg: cfg, t: t, Clock: &Clock{}, logTo: w}
	s.start()
	t.Cleanup(s.Stop)
	return s
}

func (s *Server) start() {
	s.t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if s.logTo != nil {
		log = slog.New(slog.NewTextHandler(s.logTo, &slog.HandlerOptions{Level: slog.LevelDebug}))
	} else if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testWriter{s.t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	srv, err := server.New(context.Background(), s.Cfg, server.Options{Log: log, Now: s.Clock.Now})
	if err != nil {
		s.t.Fatal(err)
	}
	s.Server = srv
	srv.Delayed.Start(context.Background())
	srv.Gateway.Start(context.Background())
	// As serve does, stopping cancels the requests' context, so waiting
	// long-polls return at once.
	base, cancel := context.WithCancel(context.Background())
	s.http = httptest.NewUnstartedServer(srv.Handler())
	s.http.Config.BaseContext = func(net.Listener) context.Context { return base }
	s.http.Config.RegisterOnShutdown(cancel)
	s.cancelRequests = cancel
	s.http.Start()
	s.URL = s.http.URL
	// Where the server is reached is its public base URL (what it tells
	// identity providers to send browsers back to).
	s.Cfg.PublicBaseURL = s.URL
}

type testWriter struct{ t testing.TB }

func (w *testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// Clock is a clock tests can move forward.
type Clock struct {
	mu     sync.Mutex
	offset time.Duration
}

// Now is the current time plus the offset.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

// Advance moves the clock forward.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.offset += d
	c.mu.Unlock()
}

// Stop stops the server and closes its database; calling it twice is fine.
func (s *Server) Stop() {
	if s.http != nil {
		s.cancelRequests()
		s.http.Close()
		s.http = nil
		_ = s.Server.Close()
	}
}

// Restart stops the server and starts a new one on the same database file.
func (s *Server) Restart() {
	s.t.Helper()
	s.Stop()
	s.start()
}

// Client is a logged-in user.
type Client struct {
	UserID, DeviceID, Token string
	srv                     *Server
	room                    string
}

// Register creates a user by shared-secret registration and returns a client
// logged in as them. The password is the name + "-password".
func (s *Server) Register(t testing.TB, name string) *Client {
	t.Helper()
	return s.register(t, name, false)
}

// RegisterAdmin is Register for an administrator.
func (s *Server) RegisterAdmin(t testing.TB, name string) *Client {
	t.Helper()
	return s.register(t, name, true)
}

func (s *Server) register(t testing.TB, name string, admin bool) *Client {
	t.Helper()
	anon := s.Anon()
	nonce := anon.MustDo(t, "GET", "/_synapse/admin/v1/register", nil, 200).Get("nonce").Str
	password := Password(name)
	mac := hmac.New(sha1.New, []byte(s.Cfg.RegistrationSharedSecret))
	flag := "notadmin"
	if admin {
		flag = "admin"
	}
	mac.Write([]byte(nonce + "\x00" + name + "\x00" + password + "\x00" + flag))
	res := anon.MustDo(t, "POST", "/_synapse/admin/v1/register", map[string]any{
		"nonce": nonce, "username": name, "password": password, "admin": admin, "mac": hex.EncodeToString(mac.Sum(nil)),
	}, 200)
	return &Client{UserID: res.Get("user_id").Str, DeviceID: res.Get("device_id").Str, Token: res.Get("access_token").Str, srv: s}
}

// Login logs a user made by Register in again, as a new device.
func (s *Server) Login(t testing.TB, name string) *Client {
	t.Helper()
	res := s.Anon().MustDo(t, "POST", "/_matrix/client/v3/login", map[string]any{"type": "m.login.password",
		"identifier": map[string]any{"type": "m.id.user", "user": name}, "password": Password(name)}, 200)
	return &Client{UserID: res.Get("user_id").Str, DeviceID: res.Get("device_id").Str, Token: res.Get("access_token").Str, srv: s}
}

// PasswordAuth is the user-interactive auth dict of a user made by Register.
func PasswordAuth(name string) map[string]any {
	return map[string]any{"type": "m.login.password", "identifier": map[string]any{"type": "m.id.user", "user": name}, "password": Password(name)}
}

// Password is the password Register gives a user.
func Password(name string) string { return name + "-password" }

// Anon is a client without an access token.
func (s *Server) Anon() *Client { return &Client{srv: s} }

// As is a client using a given token.
func (s *Server) As(token string) *Client { return &Client{Token: token, srv: s} }

// Do sends a request; body may be nil, a string or []byte (sent as is), or
// anything else (sent as JSON). It returns the status and the parsed body.
func (c *Client) Do(t testing.TB, method, path string, body any) (int, gjson.Result) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	case []byte:
		r = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, c.srv.URL+path, r)
	if err != nil {
		t.Fatal(err)
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if !json.Valid(b) || !utf8.Valid(b) {
		t.Fatalf("%s %s: %d with a body that is not JSON: %q", method, path, res.StatusCode, b)
	}
	parsed := gjson.ParseBytes(b)
	// The admin API follows Synapse's, which sends null for what is unset.
	if at := NullAt(parsed); at != "" && !strings.Contains(path, "/admin/") {
		t.Errorf("%s %s: null at %s (strict clients reject it): %s", method, path, at, b)
	}
	return res.StatusCode, parsed
}

// MustDo is Do that fails the test unless the status is want.
func (c *Client) MustDo(t testing.TB, method, path string, body any, want int) gjson.Result {
	t.Helper()
	code, res := c.Do(t, method, path, body)
	if code != want {
		t.Fatalf("%s %s: status %d, want %d: %s", method, path, code, want, res.Raw)
	}
	return res
}

// MustFail expects a Matrix error with this status and errcode.
func (c *Client) MustFail(t testing.TB, method, path string, body any, status int, errcode string) gjson.Result {
	t.Helper()
	code, res := c.Do(t, method, path, body)
	if code != status || res.Get("errcode").Str != errcode {
		t.Fatalf("%s %s: got %d %s, want %d %s: %s", method, path, code, res.Get("errcode").Str, status, errcode, res.Raw)
	}
	if res.Get("error").Type != gjson.String {
		t.Fatalf("%s %s: error without a message: %s", method, path, res.Raw)
	}
	return res
}

// CreateRoom creates a room with the given request body and returns its ID.
func (c *Client) CreateRoom(t testing.TB, body map[string]any) string {
	t.Helper()
	if body == nil {
		body = map[string]any{}
	}
	return c.MustDo(t, "POST", "/_matrix/client/v3/createRoom", body, 200).Get("room_id").Str
}

// Send sends an m.room.message with this body text and returns the event ID.
func (c *Client) Send(t testing.TB, roomID, text string) string {
	t.Helper()
	return c.MustDo(t, "PUT", "/_matrix/client/v3/rooms/"+PathEscape(roomID)+"/send/m.room.message/"+randomTxn(),
		map[string]any{"msgtype": "m.text", "body": text}, 200).Get("event_id").Str
}

// Join joins a room.
func (c *Client) Join(t testing.TB, roomID string) {
	t.Helper()
	c.MustDo(t, "POST", "/_matrix/client/v3/join/"+PathEscape(roomID), map[string]any{}, 200)
}

// Invite invites a user.
func (c *Client) Invite(t testing.TB, roomID, userID string) {
	t.Helper()
	c.MustDo(t, "POST", "/_matrix/client/v3/rooms/"+PathEscape(roomID)+"/invite", map[string]any{"user_id": userID}, 200)
}

// Raw sends a request without a body and returns the response as it is,
// for responses that are not JSON; the caller closes its body.
func (c *Client) Raw(method, path string) (*http.Response, error) {
	req, err := http.NewRequest(method, c.srv.URL+path, nil)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return http.DefaultClient.Do(req)
}

// CreateRoomOnce returns a room of the client's, created on first use.
func (c *Client) CreateRoomOnce(t testing.TB) string {
	t.Helper()
	if c.room == "" {
		c.room = c.CreateRoom(t, nil)
	}
	return c.room
}
