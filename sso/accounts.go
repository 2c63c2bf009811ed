package sso

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// maxSuffix bounds the numbers tried after a taken localpart.
const maxSuffix = 100

// account finds or makes the account an identity signs in to:
//   - an identity linked already signs in to its account;
//   - else, with link_existing, to the account its localpart names;
//   - else, with create_accounts, to a new account with that localpart,
//     or, if that is taken, the first of localpart2, localpart3, ... free:
//     a provider's user never takes over an account it was not linked to;
//   - else it is refused.
//
// It all happens in one transaction, so two first sign-ins of the same
// identity make one account.
func (s *Service) account(ctx context.Context, p *provider, c claims) (userID string, err error) {
	sub := c.string("sub")
	if sub == "" {
		return "", matrixerr.BadGateway("%s's ID token has no subject", p.cfg.Name)
	}
	if a := p.cfg.Allow; a != nil && !c.has(a.Claim, a.Value) {
		return "", matrixerr.Forbidden("your account at %s is not allowed to use this server", p.cfg.Name)
	}
	id := storage.ExternalID{AuthProvider: p.cfg.ID, ExternalID: sub}
	localpart := Localpart(c.string(p.cfg.LocalpartClaim), p.cfg.LocalpartClaim == "email")
	displayName := c.string(p.cfg.DisplayNameClaim)
	if len(displayName) > 256 {
		displayName = displayName[:256]
	}
	now := s.Now().UnixMilli()
	err = s.DB.Write(ctx, func(q Store) error {
		userID = ""
		linked, err := q.UserByExternalID(ctx, id.AuthProvider, id.ExternalID)
		if err == nil {
			userID = linked
			return nil
		}
		if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		first, err := s.Auth.UserID(localpart)
		if err != nil {
			return err
		}
		if p.cfg.LinkExisting {
			if taken, err := q.UserExists(ctx, first); err != nil {
				return err
			} else if taken {
				userID = first
				return q.AddExternalID(ctx, userID, id, now)
			}
		}
		if !p.cfg.CreateAccounts {
			return matrixerr.Forbidden("no account here is linked to your account at %s: ask an admin to link it", p.cfg.Name)
		}
		for n := 1; n <= maxSuffix; n++ {
			candidate := first
			if n > 1 {
				if candidate, err = s.Auth.UserID(localpart + strconv.Itoa(n)); err != nil {
					return err
				}
			}
			err := q.CreateUser(ctx, storage.User{UserID: candidate, CreatedTS: now, DisplayName: displayName})
			if errors.Is(err, storage.ErrConflict) {
				continue
			}
			if err != nil {
				return err
			}
			userID = candidate
			return q.AddExternalID(ctx, userID, id, now)
		}
		return matrixerr.UserInUse("the user IDs for %q are taken", localpart)
	})
	if err != nil {
		return "", err
	}
	u, err := s.DB.R().User(ctx, userID)
	if err != nil {
		return "", err
	}
	if u.Deactivated {
		return "", auth.ErrDeactivated
	}
	return userID, nil
}

// Localpart makes a user ID's localpart of a claim: lower case, an
// email's part before the @, and what a localpart may not hold replaced
// by _. An empty result is "user".
func Localpart(claim string, email bool) string {
	if email {
		claim, _, _ = strings.Cut(claim, "@")
	}
	var b strings.Builder
	for _, r := range strings.ToLower(claim) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', strings.ContainsRune("._=-/+", r):
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
		if b.Len() >= 64 {
			break
		}
	}
	if b.Len() == 0 {
		return "user"
	}
	return b.String()
}
