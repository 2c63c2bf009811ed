package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync/atomic"
	"time"

	"github.com/tidwall/gjson"
)

// client is one logged-in user speaking the Client-Server API.
type client struct {
	base   string
	http   *http.Client
	UserID string
	Device string
	token  string
}

var txnSeq atomic.Int64

func txn() string { return fmt.Sprintf("b%d-%d", time.Now().UnixNano(), txnSeq.Add(1)) }

// do sends a request and returns the parsed body; any status but 200 is an
// error, so a failure is reported, never counted as fast.
func (c *client) do(ctx context.Context, method, path string, body any) (gjson.Result, error) {
	var r io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return gjson.Result{}, err
		}
		r = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, r)
	if err != nil {
		return gjson.Result{}, err
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	res, err := c.http.Do(req)
	if err != nil {
		return gjson.Result{}, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		return gjson.Result{}, err
	}
	if res.StatusCode != http.StatusOK {
		return gjson.Result{}, fmt.Errorf("%s %s: %d %s", method, path, res.StatusCode, truncate(b))
	}
	return gjson.ParseBytes(b), nil
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// register creates a user by shared-secret registration, the convention
// Synapse's tools use, and returns them logged in.
func register(ctx context.Context, base, secret, name string, hc *http.Client) (*client, error) {
	anon := &client{base: base, http: hc}
	nonce, err := anon.do(ctx, "GET", "/_synapse/admin/v1/register", nil)
	if err != nil {
		return nil, err
	}
	password := "bench-" + name + "-password"
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(nonce.Get("nonce").Str + "\x00" + name + "\x00" + password + "\x00notadmin"))
	res, err := anon.do(ctx, "POST", "/_synapse/admin/v1/register", map[string]any{
		"nonce": nonce.Get("nonce").Str, "username": name, "password": password, "admin": false,
		"mac": hex.EncodeToString(mac.Sum(nil)),
	})
	if err != nil {
		return nil, err
	}
	return &client{base: base, http: hc, UserID: res.Get("user_id").Str, Device: res.Get("device_id").Str,
		token: res.Get("access_token").Str}, nil
}

func roomPath(roomID, rest string) string {
	return "/_matrix/client/v3/rooms/" + url.PathEscape(roomID) + rest
}

func (c *client) createRoom(ctx context.Context, public bool) (string, error) {
	preset := "private_chat"
	if public {
		preset = "public_chat"
	}
	res, err := c.do(ctx, "POST", "/_matrix/client/v3/createRoom", map[string]any{"preset": preset})
	return res.Get("room_id").Str, err
}

func (c *client) join(ctx context.Context, roomID string) error {
	_, err := c.do(ctx, "POST", "/_matrix/client/v3/join/"+url.PathEscape(roomID), map[string]any{})
	return err
}

// send sends an encrypted-looking event of about 600 bytes.
func (c *client) send(ctx context.Context, roomID string, body map[string]any) (string, error) {
	res, err := c.do(ctx, "PUT", roomPath(roomID, "/send/m.room.encrypted/"+txn()), body)
	return res.Get("event_id").Str, err
}

func (c *client) sync(ctx context.Context, query string) (gjson.Result, error) {
	return c.do(ctx, "GET", "/_matrix/client/v3/sync?"+query, nil)
}
