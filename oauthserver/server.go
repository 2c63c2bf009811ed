// Package oauthserver is Matrix's OAuth 2.0 API (spec v1.15, the MSC3861
// family) with Redoubt as its own authorization server: zitadel/oidc's
// op package does the protocol (authorization code grant with PKCE,
// refresh, revocation, ID tokens, discovery); this package keeps its
// state in the database, registers clients (RFC 7591, as Matrix restricts
// it), and serves the pages where people sign in (password or an
// identity provider) and allow a client.
package oauthserver

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/sso"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q the authorization server uses.
type Store interface {
	auth.Store
	AddBrowserSession(ctx context.Context, s storage.BrowserSession, now int64) error
	AddOAuthClient(ctx context.Context, clientID string, metadata []byte, ts int64) error
	AddOAuthRequest(ctx context.Context, r storage.OAuthRequest, expiredBefore int64) error
	AllowOAuthRequest(ctx context.Context, id, userID string, authTime int64, provider, sid string) error
	BrowserSessionOf(ctx context.Context, hash []byte, now int64) (storage.BrowserSession, error)
	DeleteBrowserSession(ctx context.Context, hash []byte) error
	DeleteOAuthRequest(ctx context.Context, id string) error
	Devices(ctx context.Context, userID string) ([]storage.Device, error)
	OAuthClient(ctx context.Context, clientID string) ([]byte, error)
	AddOAuthKey(ctx context.Context, keyID string, der []byte, ts int64) (string, []byte, error)
	OAuthKey(ctx context.Context) (string, []byte, error)
	OAuthRequestByCode(ctx context.Context, codeHash []byte, notBefore int64) (storage.OAuthRequest, error)
	OAuthRequestByID(ctx context.Context, id string, notBefore int64) (storage.OAuthRequest, error)
	SetOAuthCode(ctx context.Context, id string, codeHash []byte) error
	SetOAuthGrant(ctx context.Context, g storage.OAuthGrant) error
	UseRefreshToken(ctx context.Context, hash []byte, userID, deviceID string, now, expiredBefore int64) error
	UsedRefreshToken(ctx context.Context, hash []byte) (string, string, error)
}

var _ Store = storage.Q{}

// Prefix is where the authorization server lives; the issuer is the
// public base URL followed by it.
const Prefix = "/_redoubt/oauth/"

// usedRefreshMemory is how long an exchanged refresh token is remembered,
// to catch it presented again.
const usedRefreshMemory = 30 * 24 * time.Hour

// Server is the authorization server of one instance.
type Server struct {
	Cfg  *config.Config
	DB   storage.View[Store]
	Auth *auth.Service
	SSO  *sso.Service
	Now  func() time.Time
	Log  *slog.Logger

	op *op.Provider

	keyMu sync.Mutex
	key   *rsa.PrivateKey // nil until signingKey
	keyID string
}

// Start builds the op provider. The signing key is loaded, or made, when
// first needed: a first start does not wait for a 2048-bit key.
func (s *Server) Start(ctx context.Context) error {
	var err error
	var unused [32]byte
	cfg := &op.Config{
		CryptoKey:             unused,
		CodeMethodS256:        true,
		GrantTypeRefreshToken: true,
		SupportedUILocales:    []language.Tag{language.English},
		SupportedScopes:       []string{oidc.ScopeOpenID, scopeAPI, scopeAPIUnstable, scopeDevice + "*", scopeDeviceUnstable + "*"},
	}
	issuer := func(bool) (op.IssuerFromRequest, error) {
		return func(*http.Request) string { return s.issuer() }, nil
	}
	s.op, err = op.NewProvider(cfg, opStorage{s}, issuer, op.WithAllowInsecure(), op.WithCrypto(tokenCrypto{}),
		op.WithCORSOptions(nil), op.WithLogger(s.Log), op.WithCustomTokenEndpoint(op.NewEndpoint("token")))
	return err
}

// signingKey returns the key ID tokens are signed with: the stored one,
// or, the first time one is needed, a new one.
func (s *Server) signingKey(ctx context.Context) (*rsa.PrivateKey, string, error) {
	s.keyMu.Lock()
	defer s.keyMu.Unlock()
	if s.key != nil {
		return s.key, s.keyID, nil
	}
	var id string
	var der []byte
	err := s.DB.Read(ctx, func(q Store) error {
		var err error
		id, der, err = q.OAuthKey(ctx)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		// Made outside the write transaction, which a 2048-bit key would
		// hold for tens of milliseconds. AddOAuthKey returns the key
		// already stored if there is one.
		key, genErr := rsa.GenerateKey(rand.Reader, 2048)
		if genErr != nil {
			return nil, "", genErr
		}
		if der, err = x509.MarshalPKCS8PrivateKey(key); err != nil {
			return nil, "", err
		}
		err = s.DB.Write(ctx, func(q Store) error {
			var err error
			id, der, err = q.AddOAuthKey(ctx, "rdk_"+auth.RandomString(8), der, s.Now().UnixMilli())
			return err
		})
	}
	if err != nil {
		return nil, "", err
	}
	parsed, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return nil, "", err
	}
	key, ok := parsed.(*rsa.PrivateKey)
	if !ok {
		return nil, "", errors.New("oauth: the stored signing key is not RSA")
	}
	s.key, s.keyID = key, id
	return key, id, nil
}

// issuer is the authorization server's issuer identifier. It ends in a
// slash: clients find its metadata relative to it.
func (s *Server) issuer() string { return s.Cfg.PublicBaseURL + Prefix }

// login logs in the device a code was issued for, with the scopes it was
// granted: the device is the one its scope names.
func (s *Server) login(ctx context.Context, r *authRequest) (auth.Session, error) {
	device, ok := deviceOf(r.Scopes)
	if !ok || r.UserID == "" {
		return auth.Session{}, oidc.ErrInvalidGrant()
	}
	c, err := s.client(ctx, r.ClientID)
	if err != nil {
		return auth.Session{}, err
	}
	var sess auth.Session
	err = s.DB.Write(ctx, func(q Store) error {
		// The code is used up here, with the login, or not at all.
		if err := q.DeleteOAuthRequest(ctx, r.ID); errors.Is(err, storage.ErrNotFound) {
			return oidc.ErrInvalidGrant().WithDescription("the code was used")
		} else if err != nil {
			return err
		}
		var err error
		sess, err = s.Auth.LoginFromProvider(ctx, q, r.UserID, device, c.m.ClientName, true, r.AuthProvider, r.SID)
		if errors.Is(err, auth.ErrDeactivated) {
			return oidc.ErrAccessDenied().WithDescription("the account is deactivated")
		} else if err != nil {
			return err
		}
		return q.SetOAuthGrant(ctx, storage.OAuthGrant{UserID: r.UserID, DeviceID: device, ClientID: r.ClientID,
			Scopes: strings.Join(r.GetScopes(), " "), AuthTime: r.AuthTime.UnixMilli()})
	})
	return sess, err
}

// refresh swaps a refresh token and its access token for new ones,
// remembering the old refresh token to catch it used again.
func (s *Server) refresh(ctx context.Context, r *refreshRequest, current string) (auth.Session, error) {
	if err := s.SSO.Recheck(ctx, r.UserID); err != nil {
		return auth.Session{}, errors.Join(err, oidc.ErrInvalidGrant().WithDescription("the identity provider no longer accepts this account"))
	}
	hash := auth.HashToken(current)
	var sess auth.Session
	err := s.DB.Write(ctx, func(q Store) error {
		old, err := q.TokenByRefresh(ctx, hash)
		if errors.Is(err, storage.ErrNotFound) {
			// Exchanged since it was looked up: a copy raced it.
			return errReused
		}
		if err != nil {
			return err
		}
		if err := q.DeleteAccessToken(ctx, old.Hash); err != nil {
			return err
		}
		now := s.Now()
		if err := q.UseRefreshToken(ctx, hash, old.UserID, old.DeviceID, now.UnixMilli(), now.Add(-usedRefreshMemory).UnixMilli()); err != nil {
			return err
		}
		sess, err = s.Auth.IssueIn(ctx, q, old.UserID, old.DeviceID, true)
		return err
	})
	if errors.Is(err, errReused) {
		return sess, errors.Join(s.endReused(ctx, hash), oidc.ErrInvalidGrant().WithDescription("the refresh token was used"))
	}
	return sess, err
}

var errReused = errors.New("refresh token reused")

// endReused ends the session of a refresh token presented after it was
// exchanged: one of the two holders is not the client.
func (s *Server) endReused(ctx context.Context, hash []byte) error {
	userID, deviceID, err := s.DB.R().UsedRefreshToken(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	s.Log.Warn("a refresh token was used twice: its session ends", "user", userID, "device", deviceID)
	return s.Auth.DeleteDevices(ctx, userID, []string{deviceID})
}

// revoke ends the session of an access or refresh token of one of the
// client's sessions.
func (s *Server) revoke(ctx context.Context, token, clientID string) error {
	hash := auth.HashToken(token)
	var userID, deviceID string
	if sess, err := s.DB.DB.Session(ctx, hash); err == nil {
		userID, deviceID = sess.UserID, sess.DeviceID
	} else if t, err := s.DB.R().TokenByRefresh(ctx, hash); err == nil {
		userID, deviceID = t.UserID, t.DeviceID
	} else {
		return nil
	}
	g, err := s.DB.R().OAuthGrantOf(ctx, userID, deviceID)
	if errors.Is(err, storage.ErrNotFound) || (err == nil && g.ClientID != clientID) {
		return nil
	}
	if err != nil {
		return err
	}
	return s.Auth.DeleteDevices(ctx, userID, []string{deviceID})
}
