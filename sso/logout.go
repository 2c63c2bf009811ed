package sso

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// ErrBadLogoutToken is a back-channel logout token that is not one of a
// configured provider's, or not valid.
var ErrBadLogoutToken = matrixerr.BadRequest("invalid logout token")

// BackchannelLogout ends the sessions a provider's logout token names
// (OpenID Connect Back-Channel Logout 1.0): with a session ID, the devices
// that session logged in; with only a subject, every device of the account
// linked to it. A token about no one known here ends nothing.
func (s *Service) BackchannelLogout(ctx context.Context, raw string) error {
	issuer, err := unverifiedIssuer(raw)
	if err != nil {
		return ErrBadLogoutToken
	}
	// Several configured clients may share one issuer: the token's
	// audience says which, and its verification checks it.
	for _, cfg := range s.Cfg.SSO.Providers {
		if cfg.Issuer != issuer {
			continue
		}
		p, err := s.provider(cfg.ID)
		if err != nil {
			return err
		}
		_, verifier, err := s.discover(p)
		if err != nil {
			return err
		}
		t, err := verifier.VerifyLogout(s.clientContext(ctx), raw)
		if err != nil {
			continue
		}
		return s.endSessions(ctx, cfg.ID, t.Subject, t.SessionID)
	}
	return ErrBadLogoutToken
}

func (s *Service) endSessions(ctx context.Context, provider, sub, sid string) error {
	users, err := s.sessionUsers(ctx, provider, sub, sid)
	if err != nil {
		return err
	}
	for _, userID := range users {
		// The browser signed in to the OAuth 2.0 API's pages too.
		if err := s.DB.Write(ctx, func(q Store) error { return q.DeleteBrowserSessionsOf(ctx, userID, provider, sid) }); err != nil {
			return err
		}
		if sid == "" {
			if err := s.Auth.LogoutAll(ctx, userID); err != nil {
				return err
			}
			continue
		}
		devices, err := s.DB.R().SSODevices(ctx, userID, provider, sid)
		if err != nil {
			return err
		}
		if len(devices) > 0 {
			if err := s.Auth.DeleteDevices(ctx, userID, devices); err != nil {
				return err
			}
		}
	}
	return nil
}

// sessionUsers are the accounts a logout token is about: the one linked
// to its subject, else those its session logged in.
func (s *Service) sessionUsers(ctx context.Context, provider, sub, sid string) ([]string, error) {
	if sub == "" {
		return s.DB.R().UsersOfSSOSession(ctx, provider, sid)
	}
	userID, err := s.DB.R().UserByExternalID(ctx, provider, sub)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	}
	return []string{userID}, err
}

// unverifiedIssuer reads a JWT's issuer, to know whose keys to verify it
// with.
func unverifiedIssuer(raw string) (string, error) {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return "", errors.New("not a JWT")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return "", err
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		return "", err
	}
	return c.Issuer, nil
}
