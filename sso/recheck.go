package sso

import (
	"context"
	"errors"

	"golang.org/x/oauth2"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// ErrGone is a session refreshed for someone their provider no longer
// vouches for: all their sessions have ended.
var ErrGone = matrixerr.UnknownToken("your organisation's identity provider no longer accepts this account: sign in again", false)

// Recheck asks the providers with check_at_refresh whether a user who is
// refreshing a session is still there, when the last answer is older than
// the setting: it refreshes the provider's refresh token of the user's
// latest sign-in and checks the allow rule against the answer. A refusal
// (a disabled account, a revoked session, an allow rule no longer met)
// ends every session of the user and returns ErrGone. A provider that
// cannot be reached is not a refusal: the session goes on, and the next
// refresh asks again.
func (s *Service) Recheck(ctx context.Context, userID string) error {
	for _, cfg := range s.Cfg.SSO.Providers {
		if cfg.CheckAtRefresh <= 0 {
			continue
		}
		held, err := s.DB.R().SSORefreshOf(ctx, userID, cfg.ID)
		if err != nil {
			return err
		}
		for _, r := range held {
			now := s.Now().UnixMilli()
			if now-r.CheckedTS < cfg.CheckAtRefresh.D().Milliseconds() {
				continue
			}
			// One refresh asks; others at the same moment go on. Two asking
			// would present the same refresh token twice, which providers
			// that rotate them take for theft.
			var mine bool
			err := s.DB.Write(ctx, func(q Store) error {
				var err error
				mine, err = q.ClaimSSOCheck(ctx, cfg.ID, r.ExternalID.ExternalID, r.CheckedTS, now)
				return err
			})
			if err != nil {
				return err
			}
			if !mine {
				continue
			}
			gone, err := s.ask(ctx, cfg.ID, r)
			if err != nil {
				s.logFailure(cfg.ID, err)
				continue
			}
			if gone {
				return errors.Join(s.endAll(ctx, userID, r), ErrGone)
			}
		}
	}
	return nil
}

// ask refreshes an identity's token at its provider: gone if the provider
// refuses it, or its answer no longer meets the allow rule.
func (s *Service) ask(ctx context.Context, providerID string, r storage.SSORefresh) (gone bool, err error) {
	p, err := s.provider(providerID)
	if err != nil {
		return false, err
	}
	op, _, err := s.discover(p)
	if err != nil {
		return false, err
	}
	ctx = s.clientContext(ctx)
	tok, err := s.oauth(p, op).TokenSource(ctx, &oauth2.Token{RefreshToken: r.RefreshToken}).Token()
	// Only invalid_grant says the person's grant is gone; invalid_client
	// (an expired client secret), rate limits and outages are the
	// provider's or Redoubt's trouble, not the person's.
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	c, err := s.claimsOf(ctx, p, tok, "", r.ExternalID.ExternalID)
	var me *matrixerr.Error
	if errors.As(err, &me) && me.Kind == matrixerr.KindForbidden {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	if a := p.cfg.Allow; a != nil && !c.has(a.Claim, a.Value) {
		return true, nil
	}
	if tok.RefreshToken == "" || tok.RefreshToken == r.RefreshToken {
		return false, nil
	}
	r.RefreshToken, r.CheckedTS = tok.RefreshToken, s.Now().UnixMilli()
	return false, s.DB.Write(ctx, func(q Store) error { return q.SetSSORefresh(ctx, r) })
}

// endAll ends every session of a user the provider refused.
func (s *Service) endAll(ctx context.Context, userID string, r storage.SSORefresh) error {
	err := s.DB.Write(ctx, func(q Store) error {
		if err := q.DeleteSSORefresh(ctx, r.AuthProvider, r.ExternalID.ExternalID); err != nil {
			return err
		}
		return q.DeleteBrowserSessionsOf(ctx, userID, "", "")
	})
	if err != nil {
		return err
	}
	return s.Auth.LogoutAll(ctx, userID)
}

func (s *Service) logFailure(provider string, err error) {
	if s.Log != nil {
		s.Log.Warn("could not ask the identity provider about a refreshing session; it goes on", "provider", provider, "err", err)
	}
}
