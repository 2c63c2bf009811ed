package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"strings"
	"sync"
	"time"

	"github.com/redoubt-systems/redoubt/matrixerr"
)

// Shared-secret registration is Synapse's: GET a nonce, then POST the user
// with an HMAC-SHA1 over nonce, username, password and admin flag. Complement,
// Synapse's register_new_matrix_user and deployment scripts speak it.

// A nonce is good for a minute, and at most maxNonces are outstanding.
const (
	nonceLifetime = time.Minute
	maxNonces     = 1000
)

// nonces are the shared-secret registration nonces handed out. Anyone may
// ask for one, without a token, so they live in memory, not in the
// database: asking costs no disk and bounded memory (beyond maxNonces the
// oldest is dropped). A nonce lost in a restart is simply asked for again.
type nonces struct {
	mu     sync.Mutex
	issued map[string]time.Time
	order  []string // oldest first: all live equally long
}

// add records a new nonce, dropping the expired and, if too many are
// outstanding, the oldest.
func (n *nonces) add(nonce string, now time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.issued == nil {
		n.issued = map[string]time.Time{}
	}
	for len(n.order) > 0 && (len(n.order) >= maxNonces || now.Sub(n.issued[n.order[0]]) > nonceLifetime) {
		delete(n.issued, n.order[0])
		n.order = n.order[1:]
	}
	n.issued[nonce] = now
	n.order = append(n.order, nonce)
}

// take consumes a nonce: false if it is unknown, used or expired. (A used
// one leaves its place in order, to be dropped in its turn.)
func (n *nonces) take(nonce string, now time.Time) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	at, ok := n.issued[nonce]
	delete(n.issued, nonce)
	return ok && now.Sub(at) <= nonceLifetime
}

// NewRegistrationNonce issues a single-use nonce.
func (s *Service) NewRegistrationNonce() (string, error) {
	if s.Cfg.RegistrationSharedSecret == "" {
		return "", errSharedSecretOff
	}
	nonce := RandomString(24)
	s.nonces.add(nonce, s.Now())
	return nonce, nil
}

var errSharedSecretOff = matrixerr.BadRequest("shared secret registration is not enabled")

// SharedSecretRequest is the body of POST /_synapse/admin/v1/register.
type SharedSecretRequest struct {
	Nonce       string `json:"nonce"`
	Username    string `json:"username"`
	Password    string `json:"password"`
	Admin       bool   `json:"admin"`
	UserType    string `json:"user_type"`
	MAC         string `json:"mac"`
	DisplayName string `json:"displayname"`
	// InhibitLogin creates the user without a device or token.
	InhibitLogin bool `json:"inhibit_login"`
}

// SharedSecretRegister creates a user whose request carries a valid MAC, and
// logs them in.
func (s *Service) SharedSecretRegister(ctx context.Context, req SharedSecretRequest) (Session, error) {
	secret := s.Cfg.RegistrationSharedSecret
	if secret == "" {
		return Session{}, errSharedSecretOff
	}
	switch {
	case req.Nonce == "":
		return Session{}, matrixerr.MissingParam("nonce is required")
	case req.Username == "":
		return Session{}, matrixerr.MissingParam("username is required")
	case req.Password == "":
		return Session{}, matrixerr.MissingParam("password is required")
	case req.MAC == "":
		return Session{}, matrixerr.MissingParam("mac is required")
	}
	// The MAC covers the name as sent; the account gets its lower-case
	// form, as Synapse gives it.
	userID, err := s.UserID(strings.ToLower(req.Username))
	if err != nil {
		return Session{}, err
	}
	if !s.nonces.take(req.Nonce, s.Now()) {
		return Session{}, matrixerr.BadRequest("unrecognised nonce")
	}
	mac := hmac.New(sha1.New, []byte(secret))
	mac.Write([]byte(req.Nonce + "\x00" + req.Username + "\x00" + req.Password + "\x00"))
	if req.Admin {
		mac.Write([]byte("admin"))
	} else {
		mac.Write([]byte("notadmin"))
	}
	if req.UserType != "" {
		mac.Write([]byte("\x00" + req.UserType))
	}
	got, err := hex.DecodeString(req.MAC)
	if err != nil || !hmac.Equal(got, mac.Sum(nil)) {
		return Session{}, matrixerr.Forbidden("HMAC incorrect")
	}
	if err := s.CheckPasswordPolicy(req.Password); err != nil {
		return Session{}, err
	}
	if err := s.CreateUser(ctx, userID, req.Password, req.Admin); err != nil {
		return Session{}, err
	}
	if req.DisplayName != "" {
		err := s.DB.Write(ctx, func(q Store) error { return q.SetProfile(ctx, userID, req.DisplayName, "") })
		if err != nil {
			return Session{}, err
		}
	}
	if req.InhibitLogin {
		return Session{UserID: userID}, nil
	}
	return s.Login(ctx, userID, "", "", false)
}
