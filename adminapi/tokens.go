package adminapi

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"time"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

var tokenRE = regexp.MustCompile(`^[A-Za-z0-9._~-]{1,64}$`)

// TokenRequest is what a new registration token may specify.
type TokenRequest struct {
	Token       string `json:"token"`
	UsesAllowed *int64 `json:"uses_allowed"`
	ExpiryTime  *int64 `json:"expiry_time"`
	Length      *int   `json:"length"`
}

// CreateToken validates and stores a new registration token; the admin
// API and `redoubt token create` both use it.
func CreateToken(ctx context.Context, db storage.View[Store], now time.Time, req TokenRequest) (storage.RegistrationToken, error) {
	t := storage.RegistrationToken{Token: req.Token, UsesAllowed: req.UsesAllowed, ExpiryTime: req.ExpiryTime}
	switch {
	case t.Token != "" && !tokenRE.MatchString(t.Token):
		return t, httpapi.InvalidParam("token must be 1-64 characters of A-Z, a-z, 0-9, '.', '_', '~' and '-'")
	case t.UsesAllowed != nil && *t.UsesAllowed < 0:
		return t, httpapi.InvalidParam("uses_allowed must be a non-negative integer or null")
	case t.ExpiryTime != nil && *t.ExpiryTime <= now.UnixMilli():
		return t, httpapi.InvalidParam("expiry_time must be in the future")
	case req.Length != nil && (*req.Length < 1 || *req.Length > 64):
		return t, httpapi.InvalidParam("length must be between 1 and 64")
	}
	if t.Token == "" {
		n := 16
		if req.Length != nil {
			n = *req.Length
		}
		t.Token = randomToken(n)
	}
	err := db.Write(ctx, func(q Store) error { return q.CreateRegistrationToken(ctx, t) })
	if errors.Is(err, storage.ErrConflict) {
		return t, httpapi.InvalidParam("token %q already exists", t.Token)
	}
	return t, err
}

// randomToken draws from the characters the spec allows. The first is a
// letter or digit, so that a token can follow a command on the command
// line (redoubt token delete TOKEN) without reading as a flag.
func randomToken(n int) string {
	const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~-"
	const alnum = len(chars) - 4
	b := make([]byte, n)
	_, _ = rand.Read(b)
	for i := range b {
		n := len(chars)
		if i == 0 {
			n = alnum
		}
		b[i] = chars[int(b[i])%n]
	}
	return string(b)
}

// GET /_synapse/admin/v1/registration_tokens
func (a *API) listTokens(r *http.Request, _ *httpapi.Device) httpapi.Response {
	var valid *bool
	if r.URL.Query().Has("valid") {
		v, err := boolParam(r, "valid", true)
		if err != nil {
			return httpapi.Fail(err)
		}
		valid = &v
	}
	tokens, err := a.DB.R().RegistrationTokens(r.Context(), valid, a.Now().UnixMilli())
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(map[string]any{"registration_tokens": tokens})
}

// POST /_synapse/admin/v1/registration_tokens/new
func (a *API) createToken(r *http.Request, dev *httpapi.Device) httpapi.Response {
	var req TokenRequest
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	var t storage.RegistrationToken
	err := a.DB.WriteAll(r.Context(), func(ctx context.Context) error {
		var err error
		if t, err = CreateToken(ctx, a.DB, a.Now(), req); err != nil {
			return err
		}
		return a.record(ctx, dev, "create_registration_token", t.Token, "")
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(t)
}

func (a *API) token(r *http.Request) (storage.RegistrationToken, error) {
	t, err := a.DB.R().RegistrationTokenByName(r.Context(), mux.Vars(r)["token"])
	if errors.Is(err, storage.ErrNotFound) {
		return t, httpapi.NotFound("unknown registration token")
	}
	return t, err
}

// GET /_synapse/admin/v1/registration_tokens/{token}
func (a *API) getToken(r *http.Request, _ *httpapi.Device) httpapi.Response {
	t, err := a.token(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(t)
}

// PUT /_synapse/admin/v1/registration_tokens/{token}: null unsets a
// limit, an absent field keeps it.
func (a *API) updateToken(r *http.Request, dev *httpapi.Device) httpapi.Response {
	t, err := a.token(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	var req map[string]json.RawMessage
	if err := decode(r, &req); err != nil {
		return httpapi.Fail(err)
	}
	for field, dst := range map[string]**int64{"uses_allowed": &t.UsesAllowed, "expiry_time": &t.ExpiryTime} {
		raw, ok := req[field]
		if !ok {
			continue
		}
		var v *int64
		if err := json.Unmarshal(raw, &v); err != nil || (v != nil && *v < 0) {
			return httpapi.Fail(httpapi.InvalidParam("%s must be a non-negative integer or null", field))
		}
		*dst = v
	}
	if t.ExpiryTime != nil && *t.ExpiryTime <= a.Now().UnixMilli() && req["expiry_time"] != nil && string(req["expiry_time"]) != "null" {
		return httpapi.Fail(httpapi.InvalidParam("expiry_time must be in the future"))
	}
	err = a.audited(r.Context(), dev, "update_registration_token", t.Token, "", func(ctx context.Context) error {
		return a.DB.Write(ctx, func(q Store) error { return q.UpdateRegistrationToken(ctx, t) })
	})
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.OK(t)
}

// DELETE /_synapse/admin/v1/registration_tokens/{token}
func (a *API) deleteToken(r *http.Request, dev *httpapi.Device) httpapi.Response {
	t, err := a.token(r)
	if err != nil {
		return httpapi.Fail(err)
	}
	return httpapi.EmptyOr(a.audited(r.Context(), dev, "delete_registration_token", t.Token, "", func(ctx context.Context) error {
		return a.DB.Write(ctx, func(q Store) error { return q.DeleteRegistrationToken(ctx, t.Token) })
	}))
}
