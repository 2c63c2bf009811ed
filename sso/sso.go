// Package sso signs people in with the organisation's OpenID Connect
// providers: the authorization code flow with PKCE, state and nonce kept
// in the database, ID tokens verified with the provider's keys (go-oidc),
// identities mapped to accounts, and the provider's back-channel logout.
package sso

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q sign-in uses.
type Store interface {
	AddExternalID(ctx context.Context, userID string, e storage.ExternalID, ts int64) error
	AddSSOLogin(ctx context.Context, l storage.SSOLogin, expiredBefore int64) error
	ClaimSSOCheck(ctx context.Context, provider, externalID string, checkedTS, now int64) (bool, error)
	CreateUser(ctx context.Context, u storage.User) error
	DeleteSSORefresh(ctx context.Context, provider, externalID string) error
	SetSSORefresh(ctx context.Context, r storage.SSORefresh) error
	SSORefreshOf(ctx context.Context, userID, provider string) ([]storage.SSORefresh, error)
	DeleteBrowserSessionsOf(ctx context.Context, userID, provider, sid string) error
	SSODevices(ctx context.Context, userID, provider, sid string) ([]string, error)
	TakeSSOLogin(ctx context.Context, stateHash []byte, notBefore int64) (storage.SSOLogin, error)
	User(ctx context.Context, userID string) (storage.User, error)
	UserByExternalID(ctx context.Context, provider, externalID string) (string, error)
	UserExists(ctx context.Context, userID string) (bool, error)
	UsersOfSSOSession(ctx context.Context, provider, sid string) ([]string, error)
}

var _ Store = storage.Q{}

// The paths the providers know Redoubt by. They are Synapse's, so a
// provider's client set up for Synapse keeps working.
const (
	CallbackPath          = "/_synapse/client/oidc/callback"
	BackchannelLogoutPath = "/_synapse/client/oidc/backchannel_logout"
)

// loginLifetime bounds the time between sending a browser to a provider
// and its coming back.
const loginLifetime = 10 * time.Minute

// Service signs people in with the configured providers.
type Service struct {
	DB   storage.View[Store]
	Cfg  *config.Config
	Auth *auth.Service
	Now  func() time.Time
	// Client reaches the providers (discovery, keys, tokens, userinfo).
	Client *http.Client
	Log    *slog.Logger

	once      sync.Once
	providers map[string]*provider
}

// provider is one configured provider and, once its discovery document
// was read, what it said.
type provider struct {
	cfg config.Provider

	mu       sync.Mutex
	oidc     *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

// Providers are the configured providers, in the configuration's order.
func (s *Service) Providers() []config.Provider { return s.Cfg.SSO.Providers }

func (s *Service) provider(id string) (*provider, error) {
	s.once.Do(func() {
		s.providers = map[string]*provider{}
		for _, p := range s.Cfg.SSO.Providers {
			s.providers[p.ID] = &provider{cfg: p}
		}
	})
	p := s.providers[id]
	if p == nil {
		return nil, matrixerr.NotFound("no identity provider %q", id)
	}
	return p, nil
}

// discover reads the provider's discovery document on first use, and
// again after a failure: a provider down when Redoubt starts does not
// keep people out once it is back.
func (s *Service) discover(p *provider) (*oidc.Provider, *oidc.IDTokenVerifier, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.oidc != nil {
		return p.oidc, p.verifier, nil
	}
	ctx, cancel := context.WithTimeout(s.clientContext(context.Background()), 15*time.Second)
	defer cancel()
	op, err := oidc.NewProvider(ctx, p.cfg.Issuer)
	if err != nil {
		return nil, nil, matrixerr.BadGateway("identity provider %q: %v", p.cfg.ID, err)
	}
	// The verifier takes the algorithms the provider announces, and
	// fetches its keys with the same client, not bound to a request.
	p.oidc = op
	p.verifier = op.Verifier(&oidc.Config{ClientID: p.cfg.ClientID, Now: s.Now})
	return p.oidc, p.verifier, nil
}

func (s *Service) clientContext(ctx context.Context) context.Context {
	return oidc.ClientContext(ctx, s.Client)
}

func (s *Service) oauth(p *provider, op *oidc.Provider) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     p.cfg.ClientID,
		ClientSecret: p.cfg.ClientSecret,
		Endpoint:     op.Endpoint(),
		RedirectURL:  s.Cfg.PublicBaseURL + CallbackPath,
		Scopes:       p.cfg.Scopes,
	}
}

// Start begins a sign-in at a provider and returns the URL to send the
// browser to, and the value of the cookie that ties the sign-in to that
// browser (httpapi.BindSignIn). A login names the client URL to come back
// to; user-interactive auth names its session instead.
func (s *Service) Start(ctx context.Context, providerID, redirectURL, uiaSession string) (to, binding string, err error) {
	p, err := s.provider(providerID)
	if err != nil {
		return "", "", err
	}
	op, _, err := s.discover(p)
	if err != nil {
		return "", "", err
	}
	state, nonce, verifier, binding := rand.Text(), rand.Text(), oauth2.GenerateVerifier(), rand.Text()
	now := s.Now()
	err = s.DB.Write(ctx, func(q Store) error {
		return q.AddSSOLogin(ctx, storage.SSOLogin{StateHash: auth.HashToken(state), AuthProvider: p.cfg.ID, Nonce: nonce,
			Verifier: verifier, RedirectURL: redirectURL, UIASession: uiaSession, BrowserHash: auth.HashToken(binding), CreatedTS: now.UnixMilli()},
			now.Add(-loginLifetime).UnixMilli())
	})
	if err != nil {
		return "", "", err
	}
	return s.oauth(p, op).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), binding, nil
}

// Done is a sign-in that came back: who signed in, and what for.
type Done struct {
	UserID string
	// RedirectURL is the client's, with LoginToken to hand it; for
	// user-interactive auth, UIASession is the session now complete.
	RedirectURL, LoginToken string
	UIASession              string
}

// The callback's refusals.
var (
	ErrBadState = matrixerr.Forbidden("this sign-in is unknown, used or expired: start again from your client")
	// ErrOtherBrowser is a provider's answer brought to another browser
	// than the one that began the sign-in: someone else's sign-in.
	ErrOtherBrowser = matrixerr.Forbidden("this sign-in was begun in another browser: start again from your client")
)

// Callback finishes a sign-in when the provider sends the browser back
// with a code (or an error) and the state Start made, in the browser that
// began it (binding, its cookie).
func (s *Service) Callback(ctx context.Context, state, code, providerError, providerErrorDesc, binding string) (Done, error) {
	if state == "" {
		return Done{}, matrixerr.MissingParam("state is required")
	}
	var l storage.SSOLogin
	err := s.DB.Write(ctx, func(q Store) error {
		var err error
		l, err = q.TakeSSOLogin(ctx, auth.HashToken(state), s.Now().Add(-loginLifetime).UnixMilli())
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return Done{}, ErrBadState
	}
	if err != nil {
		return Done{}, err
	}
	if subtle.ConstantTimeCompare(l.BrowserHash, auth.HashToken(binding)) != 1 {
		return Done{}, ErrOtherBrowser
	}
	p, err := s.provider(l.AuthProvider)
	if err != nil {
		return Done{}, err
	}
	if providerError != "" {
		return Done{}, matrixerr.Forbidden("%s refused the sign-in: %s %s", p.cfg.Name, providerError, providerErrorDesc)
	}
	if code == "" {
		return Done{}, matrixerr.MissingParam("code is required")
	}
	claims, tok, err := s.identify(ctx, p, l, code)
	if err != nil {
		return Done{}, err
	}
	userID, err := s.account(ctx, p, claims)
	if err != nil {
		return Done{}, err
	}
	if p.cfg.CheckAtRefresh > 0 && tok.RefreshToken != "" {
		r := storage.SSORefresh{ExternalID: storage.ExternalID{AuthProvider: p.cfg.ID, ExternalID: claims.string("sub")},
			UserID: userID, RefreshToken: tok.RefreshToken, CheckedTS: s.Now().UnixMilli()}
		if err := s.DB.Write(ctx, func(q Store) error { return q.SetSSORefresh(ctx, r) }); err != nil {
			return Done{}, err
		}
	}
	done := Done{UserID: userID, RedirectURL: l.RedirectURL, UIASession: l.UIASession}
	if l.UIASession != "" {
		return done, s.Auth.CompleteSSO(ctx, l.UIASession, userID)
	}
	done.LoginToken, err = s.Auth.IssueLoginToken(ctx, userID, p.cfg.ID, claims.string("sid"), l.BrowserHash)
	return done, err
}

// identify exchanges the code for tokens and returns the verified claims:
// the ID token's (its signature, issuer, audience, expiry and nonce
// checked), with the userinfo endpoint's added where the provider has one.
func (s *Service) identify(ctx context.Context, p *provider, l storage.SSOLogin, code string) (claims, *oauth2.Token, error) {
	op, _, err := s.discover(p)
	if err != nil {
		return nil, nil, err
	}
	ctx = s.clientContext(ctx)
	tok, err := s.oauth(p, op).Exchange(ctx, code, oauth2.VerifierOption(l.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) {
			return nil, nil, matrixerr.Forbidden("%s refused the code: %s", p.cfg.Name, re.ErrorCode)
		}
		return nil, nil, matrixerr.BadGateway("identity provider %q: %v", p.cfg.ID, err)
	}
	if raw, _ := tok.Extra("id_token").(string); raw == "" {
		return nil, nil, matrixerr.BadGateway("%s sent no ID token", p.cfg.Name)
	}
	c, err := s.claimsOf(ctx, p, tok, l.Nonce, "")
	return c, tok, err
}

// claimsOf returns the claims of a token response: its ID token's, if it
// has one, verified (and, for a sign-in, that it carries the sign-in's
// nonce), with the userinfo endpoint's added where the provider has one,
// which must be about the same subject (sub, if the caller knows it).
func (s *Service) claimsOf(ctx context.Context, p *provider, tok *oauth2.Token, nonce, sub string) (claims, error) {
	op, verifier, err := s.discover(p)
	if err != nil {
		return nil, err
	}
	c := claims{}
	if raw, _ := tok.Extra("id_token").(string); raw != "" {
		idt, err := verifier.Verify(ctx, raw)
		if err != nil {
			return nil, matrixerr.Forbidden("%s's ID token is not valid: %v", p.cfg.Name, err)
		}
		if nonce != "" && idt.Nonce != nonce {
			return nil, matrixerr.Forbidden("%s's ID token is not for this sign-in (nonce)", p.cfg.Name)
		}
		if err := idt.Claims(&c); err != nil {
			return nil, matrixerr.BadGateway("%s's ID token: %v", p.cfg.Name, err)
		}
		if sub == "" {
			sub = idt.Subject
		}
	}
	if op.UserInfoEndpoint() != "" {
		info, err := op.UserInfo(ctx, oauth2.StaticTokenSource(tok))
		if err != nil {
			return nil, matrixerr.BadGateway("%s's userinfo: %v", p.cfg.Name, err)
		}
		if sub != "" && info.Subject != sub {
			return nil, matrixerr.Forbidden("%s's userinfo is about someone else", p.cfg.Name)
		}
		more := claims{}
		if err := info.Claims(&more); err != nil {
			return nil, matrixerr.BadGateway("%s's userinfo: %v", p.cfg.Name, err)
		}
		for k, v := range more {
			if _, ok := c[k]; !ok {
				c[k] = v
			}
		}
	}
	if sub != "" && c.string("sub") != sub {
		return nil, matrixerr.Forbidden("%s's answer is about someone else", p.cfg.Name)
	}
	return c, nil
}

// claims are an ID token's and userinfo's claims.
type claims map[string]any

func (c claims) string(name string) string {
	switch v := c[name].(type) {
	case string:
		return v
	case float64:
		return fmt.Sprint(v)
	}
	return ""
}

// has reports whether a claim is value, or a list that holds it.
func (c claims) has(name, value string) bool {
	switch v := c[name].(type) {
	case string:
		return v == value
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok && s == value {
				return true
			}
		}
	case bool:
		return fmt.Sprint(v) == value
	}
	return false
}
