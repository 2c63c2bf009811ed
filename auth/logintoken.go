package auth

import (
	"context"
	"crypto/subtle"
	"errors"
	"time"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
)

// LoginTokenLifetime is how long a login token handed to a client after a
// sign-in at a provider stays good: long enough for a redirect and one
// request, short enough that one left in a browser's history is useless.
const LoginTokenLifetime = 2 * time.Minute

// ErrBadLoginToken is an unknown, used or expired m.login.token.
var ErrBadLoginToken = matrixerr.Forbidden("invalid or expired login token")

// IssueLoginToken makes a login token for a user that signed in at a
// provider (whose session sid, if the provider named one, ends the
// devices it logs in when the provider says so), in the browser whose
// sign-in cookie has the hash browserHash.
func (s *Service) IssueLoginToken(ctx context.Context, userID, provider, sid string, browserHash []byte) (string, error) {
	token := newToken("rdl_")
	now := s.Now()
	return token, s.DB.Write(ctx, func(q Store) error {
		return q.AddLoginToken(ctx, storage.LoginToken{Hash: HashToken(token), UserID: userID, AuthProvider: provider, SID: sid, BrowserHash: browserHash,
			ExpiresTS: now.Add(LoginTokenLifetime).UnixMilli()}, now.UnixMilli())
	})
}

// LoginWithToken is m.login.token: the token is used up, and a device logs
// in for its user.
func (s *Service) LoginWithToken(ctx context.Context, token, deviceID, displayName string, refresh bool) (Session, error) {
	if deviceID == "" {
		deviceID = randomLetters(10)
	}
	var sess Session
	err := s.DB.Write(ctx, func(q Store) error {
		now := s.Now().UnixMilli()
		t, err := q.TakeLoginToken(ctx, HashToken(token), now)
		if errors.Is(err, storage.ErrNotFound) {
			return ErrBadLoginToken
		}
		if err != nil {
			return err
		}
		sess, err = s.LoginFromProvider(ctx, q, t.UserID, deviceID, displayName, refresh, t.AuthProvider, t.SID)
		return err
	})
	return sess, err
}

// RedeemLoginToken uses up a login token without logging a device in:
// for a browser signing in to the authorization server's own pages, which
// must be the browser the sign-in began in (binding, its cookie), so that
// nobody can sign someone else's browser in to their own account.
func (s *Service) RedeemLoginToken(ctx context.Context, token, binding string) (storage.LoginToken, error) {
	var t storage.LoginToken
	err := s.DB.Write(ctx, func(q Store) error {
		var err error
		t, err = q.TakeLoginToken(ctx, HashToken(token), s.Now().UnixMilli())
		if errors.Is(err, storage.ErrNotFound) || (err == nil && subtle.ConstantTimeCompare(t.BrowserHash, HashToken(binding)) != 1) {
			return ErrBadLoginToken
		}
		return err
	})
	return t, err
}

// LoginFromProvider is LoginIn for a sign-in through an identity
// provider, inside a write the caller holds: a deactivated account is
// refused, and a device logged in by a provider's session (sid) is
// recorded as that session's, for the provider's logout.
func (s *Service) LoginFromProvider(ctx context.Context, q Store, userID, deviceID, displayName string, refresh bool, provider, sid string) (Session, error) {
	u, err := q.User(ctx, userID)
	if err != nil {
		return Session{}, err
	}
	if u.Deactivated {
		return Session{}, ErrDeactivated
	}
	sess, err := s.LoginIn(ctx, q, userID, deviceID, displayName, refresh)
	if err != nil || sid == "" {
		return sess, err
	}
	return sess, q.AddSSODevice(ctx, userID, deviceID, provider, sid)
}
