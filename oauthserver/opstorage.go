package oauthserver

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/storage"
)

// opStorage is what the op package keeps: authorization requests and
// codes, tokens, clients and the signing key, all in the database.
// Access and refresh tokens are Redoubt's own (access_tokens), so the
// Client-Server API knows them as any other.
type opStorage struct{ s *Server }

var _ op.Storage = opStorage{}

func (o opStorage) now() time.Time { return o.s.Now() }

// CreateAuthRequest keeps a validated request. Matrix's API asks for
// PKCE with S256 and exactly one device.
func (o opStorage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	if req.CodeChallenge == "" || req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with S256 is required")
	}
	if _, ok := deviceOf(req.Scopes); !ok {
		return nil, oidc.ErrInvalidScope().WithDescription("ask for exactly one device: urn:matrix:client:device:DEVICE_ID")
	}
	r := &authRequest{ID: "rdq_" + auth.RandomString(16), ClientID: req.ClientID, RedirectURI: req.RedirectURI,
		Scopes: req.Scopes, State: req.State, Nonce: req.Nonce, ResponseType: req.ResponseType, ResponseMode: req.ResponseMode,
		CodeChallenge: &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}}
	body, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	now := o.now()
	return r, o.s.DB.Write(ctx, func(q Store) error {
		return q.AddOAuthRequest(ctx, storage.OAuthRequest{ID: r.ID, Request: body, CreatedTS: now.UnixMilli()},
			now.Add(-requestLifetime).UnixMilli())
	})
}

func decodeRequest(row storage.OAuthRequest, err error) (*authRequest, error) {
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oidc.ErrInvalidRequest().WithDescription("unknown or expired authorization request")
	}
	if err != nil {
		return nil, err
	}
	r := &authRequest{}
	if err := json.Unmarshal(row.Request, r); err != nil {
		return nil, err
	}
	r.ID, r.UserID, r.AuthProvider, r.SID = row.ID, row.UserID, row.AuthProvider, row.SID
	if row.AuthTime != 0 {
		r.AuthTime = time.UnixMilli(row.AuthTime)
	}
	return r, nil
}

func (o opStorage) request(ctx context.Context, id string) (*authRequest, error) {
	return decodeRequest(o.s.DB.R().OAuthRequestByID(ctx, id, o.now().Add(-requestLifetime).UnixMilli()))
}

func (o opStorage) AuthRequestByID(ctx context.Context, id string) (op.AuthRequest, error) {
	return o.request(ctx, id)
}

func (o opStorage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	return decodeRequest(o.s.DB.R().OAuthRequestByCode(ctx, auth.HashToken(code), o.now().Add(-requestLifetime).UnixMilli()))
}

func (o opStorage) SaveAuthCode(ctx context.Context, id, code string) error {
	return o.s.DB.Write(ctx, func(q Store) error { return q.SetOAuthCode(ctx, id, auth.HashToken(code)) })
}

// DeleteAuthRequest forgets a request. Its code's exchange already did,
// in the transaction that logged the device in (so a code works once,
// also when two exchanges race): gone is fine.
func (o opStorage) DeleteAuthRequest(ctx context.Context, id string) error {
	err := o.s.DB.Write(ctx, func(q Store) error { return q.DeleteOAuthRequest(ctx, id) })
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	return err
}

func (o opStorage) CreateAccessToken(ctx context.Context, req op.TokenRequest) (string, time.Time, error) {
	id, _, exp, err := o.CreateAccessAndRefreshTokens(ctx, req, "")
	return id, exp, err
}

// CreateAccessAndRefreshTokens logs the device in, for a code, or, for a
// refresh token, swaps it and its access token for new ones. The "token
// ID" the op package asks for is the access token itself (see tokenCrypto).
func (o opStorage) CreateAccessAndRefreshTokens(ctx context.Context, req op.TokenRequest, current string) (string, string, time.Time, error) {
	var sess auth.Session
	var err error
	switch r := req.(type) {
	case *authRequest:
		sess, err = o.s.login(ctx, r)
	case *refreshRequest:
		sess, err = o.s.refresh(ctx, r, current)
	default:
		return "", "", time.Time{}, oidc.ErrUnsupportedGrantType()
	}
	if err != nil {
		return "", "", time.Time{}, err
	}
	return sess.AccessToken, sess.RefreshToken, o.now().Add(time.Duration(sess.ExpiresInMS) * time.Millisecond), nil
}

// TokenRequestByRefreshToken finds the grant of a refresh token. One
// already exchanged was copied: its session ends, for whoever holds it.
func (o opStorage) TokenRequestByRefreshToken(ctx context.Context, token string) (op.RefreshTokenRequest, error) {
	hash := auth.HashToken(token)
	t, err := o.s.DB.R().TokenByRefresh(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) {
		if err := o.s.endReused(ctx, hash); err != nil {
			return nil, err
		}
		return nil, op.ErrInvalidRefreshToken
	}
	if err != nil {
		return nil, err
	}
	g, err := o.s.DB.R().OAuthGrantOf(ctx, t.UserID, t.DeviceID)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, op.ErrInvalidRefreshToken // a refresh token of the classic login
	}
	if err != nil {
		return nil, err
	}
	return &refreshRequest{UserID: g.UserID, DeviceID: g.DeviceID, ClientID: g.ClientID, Scopes: strings.Fields(g.Scopes),
		AuthTime: time.UnixMilli(g.AuthTime)}, nil
}

func (o opStorage) TerminateSession(context.Context, string, string) error { return nil }

// RevokeToken ends the session an access or refresh token belongs to
// (RFC 7009): the device is logged out. A token not known, or not the
// client's, is answered as revoked without doing anything.
func (o opStorage) RevokeToken(ctx context.Context, token, _, clientID string) *oidc.Error {
	if err := o.s.revoke(ctx, token, clientID); err != nil {
		return oidc.ErrServerError().WithParent(err)
	}
	return nil
}

// GetRefreshTokenInfo sends revocation to RevokeToken with the token as
// it came, which knows refresh tokens.
func (o opStorage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (o opStorage) SigningKey(ctx context.Context) (op.SigningKey, error) {
	key, id, err := o.s.signingKey(ctx)
	if err != nil {
		return nil, err
	}
	return signingKey{key, id}, nil
}

func (o opStorage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (o opStorage) KeySet(ctx context.Context) ([]op.Key, error) {
	key, id, err := o.s.signingKey(ctx)
	if err != nil {
		return nil, err
	}
	return []op.Key{publicKey{&key.PublicKey, id}}, nil
}

func (o opStorage) GetClientByClientID(ctx context.Context, id string) (op.Client, error) {
	return o.s.client(ctx, id)
}

func (o opStorage) AuthorizeClientIDSecret(context.Context, string, string) error {
	return oidc.ErrInvalidClient().WithDescription("clients here are public")
}

// The ID token and userinfo name the Matrix user.
func (o opStorage) SetUserinfoFromScopes(_ context.Context, info *oidc.UserInfo, userID, _ string, _ []string) error {
	info.Subject = userID
	return nil
}

func (o opStorage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, _, subject, _ string) error {
	info.Subject = subject
	return nil
}

func (o opStorage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errors.New("introspection is not offered")
}

func (o opStorage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (o opStorage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("JWT client authentication is not offered")
}

func (o opStorage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("the JWT profile grant is not offered")
}

func (o opStorage) Health(context.Context) error { return nil }

// tokenCrypto makes the op package hand out Redoubt's own access tokens
// and unguessable codes. It builds a bearer token by "encrypting"
// tokenID:subject; the token ID is the access token, so that is what goes
// out. It builds a code by "encrypting" the request's ID, which the sign-in
// pages show: the code is that ID and a random part, and is kept as its
// hash (SaveAuthCode). Nothing is decrypted: the Client-Server API looks
// access tokens up by their hash.
type tokenCrypto struct{}

func (tokenCrypto) Encrypt(s string) (string, error) {
	if token, _, ok := strings.Cut(s, ":"); ok {
		return token, nil
	}
	return s + "." + auth.RandomString(32), nil
}

func (tokenCrypto) Decrypt(string) (string, error) { return "", errors.New("not an encrypted token") }

type signingKey struct {
	key *rsa.PrivateKey
	id  string
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct {
	key *rsa.PublicKey
	id  string
}

func (k publicKey) ID() string                         { return k.id }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return k.key }
