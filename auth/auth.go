// Package auth owns accounts and sessions: user IDs, password hashes, devices,
// access and refresh tokens, user-interactive authentication and
// shared-secret registration.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/redoubt-systems/redoubt/caller"
	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/ratelimit"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q the account service uses: what it reads
// and writes.
type Store interface {
	AddAccessToken(ctx context.Context, t storage.AccessToken) error
	AddLoginToken(ctx context.Context, t storage.LoginToken, now int64) error
	AddSSODevice(ctx context.Context, userID, deviceID, provider, sid string) error
	CompleteUIASSO(ctx context.Context, session, userID string, now int64) error
	ExternalIDs(ctx context.Context, userID string) ([]storage.ExternalID, error)
	CreateUser(ctx context.Context, u storage.User) error
	DeactivateUser(ctx context.Context, userID string) error
	DeleteAccessToken(ctx context.Context, hash []byte) error
	DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error
	DeleteDevicesExcept(ctx context.Context, userID, keep string) error
	OAuthGrantOf(ctx context.Context, userID, deviceID string) (storage.OAuthGrant, error)
	ReturnRegistrationToken(ctx context.Context, token string) error
	SetPasswordHash(ctx context.Context, userID, hash string) error
	SetProfile(ctx context.Context, userID, displayName, avatarURL string) error
	TakeLoginToken(ctx context.Context, hash []byte, now int64) (storage.LoginToken, error)
	TokenByRefresh(ctx context.Context, refreshHash []byte) (storage.AccessToken, error)
	TouchDevice(ctx context.Context, userID, deviceID string, ts int64, ip, ua string) error
	UpsertDevice(ctx context.Context, d storage.Device) error
	StartUIASSO(ctx context.Context, u storage.UIASSO, now, expires int64) (bool, error)
	UIASSOSession(ctx context.Context, session string, now int64) (storage.UIASSO, error)
	UseUIASSO(ctx context.Context, session, userID string, now int64) (bool, error)
	UseRegistrationToken(ctx context.Context, token string, now int64) (bool, error)
	User(ctx context.Context, userID string) (storage.User, error)
	UserExists(ctx context.Context, userID string) (bool, error)
}

var _ Store = storage.Q{}

// Service is the account and session service of one instance.
type Service struct {
	DB  storage.View[Store]
	Cfg *config.Config
	Now func() time.Time
	// Backoff, if set, slows down repeated failed logins per account.
	Backoff *ratelimit.Backoff
	// OnDevicesDeleted, if set, is told after a user lost devices (their
	// keys went with them), so others' syncs learn of it.
	OnDevicesDeleted func(userID string)
	// Recheck, if set, may refuse a refresh: the user's identity
	// provider no longer vouches for them (sso.Service.Recheck).
	Recheck func(ctx context.Context, userID string) error
	nonces  nonces
}

func (s *Service) devicesDeleted(ctx context.Context, userID string, err error) error {
	if err == nil && s.OnDevicesDeleted != nil {
		storage.AfterCommit(ctx, func() { s.OnDevicesDeleted(userID) })
	}
	return err
}

// Errors the service returns; the HTTP edge maps them.
var (
	ErrBadLogin    = matrixerr.Forbidden("invalid username or password")
	ErrDeactivated = matrixerr.UserDeactivated("this account has been deactivated")
)

// RandomString returns n bytes of randomness, base64url-encoded.
func RandomString(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on supported platforms
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func randomLetters(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	for i := range b {
		b[i] = 'A' + b[i]%26
	}
	return string(b)
}

// HashToken is how tokens are stored: only their SHA-256.
func HashToken(token string) []byte {
	h := sha256.Sum256([]byte(token))
	return h[:]
}

// newToken returns a 256-bit random token with a recognisable prefix.
func newToken(prefix string) string { return prefix + RandomString(32) }

var localpartRE = regexp.MustCompile(`^[a-z0-9._=\-/+]+$`)

// UserID validates a localpart and returns the full user ID.
func (s *Service) UserID(localpart string) (string, error) {
	if !localpartRE.MatchString(localpart) {
		return "", matrixerr.InvalidUsername("user ID may only contain a-z, 0-9, and . _ = - / +")
	}
	id := "@" + localpart + ":" + s.Cfg.ServerName
	if len(id) > 255 {
		return "", matrixerr.InvalidUsername("user ID is too long")
	}
	return id, nil
}

// Available checks that a localpart is valid and not taken
// (M_INVALID_USERNAME, M_USER_IN_USE).
func (s *Service) Available(ctx context.Context, localpart string) error {
	if localpart == "" {
		return matrixerr.MissingParam("username is required")
	}
	userID, err := s.UserID(localpart)
	if err != nil {
		return err
	}
	taken, err := s.DB.R().UserExists(ctx, userID)
	if err == nil && taken {
		err = matrixerr.UserInUse("user ID already taken")
	}
	return err
}

// ResolveUser accepts a localpart or a full user ID of this server.
func (s *Service) ResolveUser(user string) (string, error) {
	if strings.HasPrefix(user, "@") {
		local, server, ok := strings.Cut(user[1:], ":")
		if !ok || server != s.Cfg.ServerName {
			return "", ErrBadLogin
		}
		user = local
	}
	return s.UserID(strings.ToLower(user))
}

// CheckPasswordPolicy rejects passwords that are too short.
func (s *Service) CheckPasswordPolicy(password string) error {
	if len([]rune(password)) < s.Cfg.Password.MinLength {
		return matrixerr.WeakPassword("password must be at least %d characters", s.Cfg.Password.MinLength)
	}
	return nil
}

// CreateUser creates an account. password may be empty (no password login).
func (s *Service) CreateUser(ctx context.Context, userID, password string, admin bool) error {
	u, err := s.NewUser(userID, password, admin)
	if err != nil {
		return err
	}
	return s.AddUser(ctx, u)
}

// NewUser is a user to add: the password hashed (slow on purpose: do it
// before a transaction, not in one).
func (s *Service) NewUser(userID, password string, admin bool) (storage.User, error) {
	var hash string
	if password != "" {
		var err error
		if hash, err = HashPassword(password); err != nil {
			return storage.User{}, err
		}
	}
	return storage.User{UserID: userID, PasswordHash: hash, IsAdmin: admin, CreatedTS: s.Now().UnixMilli(),
		DisplayName: localpartOf(userID)}, nil
}

// AddUser stores a user made by NewUser; M_USER_IN_USE if the ID is taken.
func (s *Service) AddUser(ctx context.Context, u storage.User) error {
	err := s.DB.Write(ctx, func(q Store) error { return q.CreateUser(ctx, u) })
	if errors.Is(err, storage.ErrConflict) {
		return matrixerr.UserInUse("user ID already taken")
	}
	return err
}

func localpartOf(userID string) string {
	local, _, _ := strings.Cut(strings.TrimPrefix(userID, "@"), ":")
	return local
}

// VerifyPassword checks a user's password. A wrong password, an unknown user
// and an account without a password all look the same.
func (s *Service) VerifyPassword(ctx context.Context, userID, password string) error {
	// Failed attempts on one account slow its next ones down, whoever
	// makes them: guessing a password takes longer than anyone waits.
	if s.Backoff != nil {
		if wait := s.Backoff.Wait(userID); wait > 0 {
			return matrixerr.LimitExceeded(wait, "too many failed attempts for this account")
		}
		err := s.verifyPassword(ctx, userID, password)
		if errors.Is(err, ErrBadLogin) {
			s.Backoff.Failed(userID)
		} else if err == nil {
			s.Backoff.Succeeded(userID)
		}
		return err
	}
	return s.verifyPassword(ctx, userID, password)
}

func (s *Service) verifyPassword(ctx context.Context, userID, password string) error {
	u, err := s.DB.R().User(ctx, userID)
	if errors.Is(err, storage.ErrNotFound) {
		// Spend the same time as a real check, so timing does not reveal
		// which user IDs exist.
		_, _ = CheckPassword(dummyHash(), password)
		return ErrBadLogin
	}
	if err != nil {
		return err
	}
	if u.Deactivated {
		return ErrDeactivated
	}
	if u.PasswordHash == "" {
		return ErrBadLogin
	}
	ok, err := CheckPassword(u.PasswordHash, password)
	if err != nil {
		return err
	}
	if !ok {
		return ErrBadLogin
	}
	return nil
}

// dummyHash is made on first use, not at start-up: hashing costs tens of
// milliseconds and 19 MiB.
var dummyHash = sync.OnceValue(func() string {
	h, _ := HashPassword("redoubt-dummy")
	return h
})

// Session is a new login's credentials.
type Session struct {
	UserID       string `json:"user_id"`
	AccessToken  string `json:"access_token"`
	DeviceID     string `json:"device_id"`
	RefreshToken string `json:"refresh_token,omitempty"`
	ExpiresInMS  int64  `json:"expires_in_ms,omitempty"`
}

// Login creates (or reuses) a device and issues a token for it.
func (s *Service) Login(ctx context.Context, userID, deviceID, displayName string, refresh bool) (Session, error) {
	if deviceID == "" {
		deviceID = randomLetters(10)
	}
	var sess Session
	err := s.DB.Write(ctx, func(q Store) error {
		var err error
		sess, err = s.LoginIn(ctx, q, userID, deviceID, displayName, refresh)
		return err
	})
	return sess, err
}

// LoginIn makes (or reuses) the device and issues its tokens, inside a
// write the caller holds.
func (s *Service) LoginIn(ctx context.Context, q Store, userID, deviceID, displayName string, refresh bool) (Session, error) {
	d := storage.Device{UserID: userID, DeviceID: deviceID, DisplayName: displayName, CreatedTS: s.Now().UnixMilli()}
	if err := q.UpsertDevice(ctx, d); err != nil {
		return Session{}, err
	}
	return s.IssueIn(ctx, q, userID, deviceID, refresh)
}

// IssueIn issues a device new tokens, inside a write the caller holds.
func (s *Service) IssueIn(ctx context.Context, q Store, userID, deviceID string, refresh bool) (Session, error) {
	now := s.Now()
	sess := Session{UserID: userID, DeviceID: deviceID, AccessToken: newToken("rdt_")}
	t := storage.AccessToken{Hash: HashToken(sess.AccessToken), UserID: userID, DeviceID: deviceID, CreatedTS: now.UnixMilli()}
	if refresh {
		life := s.Cfg.Auth.AccessTokenLifetime.D()
		sess.RefreshToken = newToken("rdr_")
		sess.ExpiresInMS = life.Milliseconds()
		t.ExpiresTS = now.Add(life).UnixMilli()
		t.RefreshHash = HashToken(sess.RefreshToken)
	}
	return sess, q.AddAccessToken(ctx, t)
}

// Refresh exchanges a refresh token for a new access and refresh token; the
// old pair stops working at once.
func (s *Service) Refresh(ctx context.Context, refreshToken string) (Session, error) {
	if s.Recheck != nil {
		t, err := s.DB.R().TokenByRefresh(ctx, HashToken(refreshToken))
		if err == nil {
			if err := s.Recheck(ctx, t.UserID); err != nil {
				return Session{}, err
			}
		}
	}
	var sess Session
	err := s.DB.Write(ctx, func(q Store) error {
		old, err := q.TokenByRefresh(ctx, HashToken(refreshToken))
		if errors.Is(err, storage.ErrNotFound) {
			return matrixerr.UnknownToken("unknown refresh token", false)
		}
		if err != nil {
			return err
		}
		// A session of the OAuth 2.0 API refreshes at its token endpoint,
		// which knows its client and catches a token used twice.
		if _, err := q.OAuthGrantOf(ctx, old.UserID, old.DeviceID); err == nil {
			return matrixerr.UnknownToken("this session refreshes at the OAuth 2.0 token endpoint", false)
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := q.DeleteAccessToken(ctx, old.Hash); err != nil {
			return err
		}
		sess, err = s.IssueIn(ctx, q, old.UserID, old.DeviceID, true)
		return err
	})
	return sess, err
}

// Authenticate finds the device an access token belongs to, and records
// when (and, if kept, from where and with what) it was last used.
func (s *Service) Authenticate(ctx context.Context, token string, from caller.Connection) (*caller.Device, error) {
	hash := HashToken(token)
	sess, err := s.DB.DB.Session(ctx, hash)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, matrixerr.UnknownToken("unknown access token", false)
	}
	if err != nil {
		return nil, err
	}
	now := s.Now()
	if sess.ExpiresTS != 0 && now.UnixMilli() >= sess.ExpiresTS {
		return nil, matrixerr.UnknownToken("access token expired", true)
	}
	// Last-seen is for the user's session list; a minute's precision is
	// enough, and it spares a write on most requests. IP and user agent
	// only when the operator keeps connection records.
	ip, ua := "", ""
	if s.Cfg.Privacy.RecordIPs {
		ip, ua = from.IP, from.UserAgent
		if len(ua) > 512 {
			ua = ua[:512]
		}
	}
	if now.UnixMilli()-sess.LastSeenTS > time.Minute.Milliseconds() || ip != sess.LastSeenIP {
		err := s.DB.Write(ctx, func(q Store) error {
			return q.TouchDevice(ctx, sess.UserID, sess.DeviceID, now.UnixMilli(), ip, ua)
		})
		if err != nil {
			return nil, err
		}
		s.DB.DB.SessionTouched(hash)
	}
	return &caller.Device{UserID: sess.UserID, DeviceID: sess.DeviceID, IsAdmin: sess.IsAdmin}, nil
}

// Logout deletes the caller's device, and with it its tokens.
func (s *Service) Logout(ctx context.Context, dev *caller.Device) error {
	return s.DeleteDevices(ctx, dev.UserID, []string{dev.DeviceID})
}

// DeleteDevices deletes devices of one user and their tokens.
func (s *Service) DeleteDevices(ctx context.Context, userID string, deviceIDs []string) error {
	return s.devicesDeleted(ctx, userID, s.DB.Write(ctx, func(q Store) error { return q.DeleteDevices(ctx, userID, deviceIDs) }))
}

// LogoutAll deletes every device of a user.
func (s *Service) LogoutAll(ctx context.Context, userID string) error {
	return s.devicesDeleted(ctx, userID, s.DB.Write(ctx, func(q Store) error { return q.DeleteDevicesExcept(ctx, userID, "") }))
}

// SetPassword replaces a user's password; with logoutOthers, every device but
// keepDevice is logged out.
func (s *Service) SetPassword(ctx context.Context, userID, password string, logoutOthers bool, keepDevice string) error {
	hash, err := s.NewPasswordHash(password)
	if err != nil {
		return err
	}
	return s.StorePassword(ctx, userID, hash, logoutOthers, keepDevice)
}

// NewPasswordHash checks a new password against the policy and hashes it
// (slow on purpose: do it before a transaction, not in one).
func (s *Service) NewPasswordHash(password string) (string, error) {
	if err := s.CheckPasswordPolicy(password); err != nil {
		return "", err
	}
	return HashPassword(password)
}

// StorePassword sets a hash made by NewPasswordHash, logging out the
// user's other devices (all but keepDevice) if asked.
func (s *Service) StorePassword(ctx context.Context, userID, hash string, logoutOthers bool, keepDevice string) error {
	return s.devicesDeleted(ctx, userID, s.DB.Write(ctx, func(q Store) error {
		if err := q.SetPasswordHash(ctx, userID, hash); err != nil {
			return err
		}
		if logoutOthers {
			return q.DeleteDevicesExcept(ctx, userID, keepDevice)
		}
		return nil
	}))
}

// Deactivate closes an account: no more logins, devices and tokens gone,
// profile cleared. The caller leaves the user's rooms first.
func (s *Service) Deactivate(ctx context.Context, userID string) error {
	return s.devicesDeleted(ctx, userID, s.DB.Write(ctx, func(q Store) error { return q.DeactivateUser(ctx, userID) }))
}
