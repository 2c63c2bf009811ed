package auth

import (
	"context"
	"crypto/hmac"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"strings"
	"time"

	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// Shared-secret registration is Synapse's: GET a nonce, then POST the user
// with an HMAC-SHA1 over nonce, username, password and admin flag. Complement,
// Synapse's register_new_matrix_user and deployment scripts speak it.

const nonceLifetime = time.Minute

// NewRegistrationNonce issues a single-use nonce.
func (s *Service) NewRegistrationNonce(ctx context.Context) (string, error) {
	if s.Cfg.RegistrationSharedSecret == "" {
		return "", errSharedSecretOff
	}
	nonce := RandomString(24)
	err := s.DB.Write(ctx, func(q storage.Q) error {
		return q.AddRegistrationNonce(ctx, nonce, s.Now().UnixMilli())
	})
	return nonce, err
}

var errSharedSecretOff = httpapi.BadRequest("shared secret registration is not enabled")

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
		return Session{}, httpapi.MissingParam("nonce is required")
	case req.Username == "":
		return Session{}, httpapi.MissingParam("username is required")
	case req.Password == "":
		return Session{}, httpapi.MissingParam("password is required")
	case req.MAC == "":
		return Session{}, httpapi.MissingParam("mac is required")
	}
	// The MAC covers the name as sent; the account gets its lower-case
	// form, as Synapse gives it.
	userID, err := s.UserID(strings.ToLower(req.Username))
	if err != nil {
		return Session{}, err
	}
	err = s.DB.Write(ctx, func(q storage.Q) error {
		return q.TakeRegistrationNonce(ctx, req.Nonce, s.Now().Add(-nonceLifetime).UnixMilli())
	})
	if errors.Is(err, storage.ErrNotFound) {
		return Session{}, httpapi.BadRequest("unrecognised nonce")
	}
	if err != nil {
		return Session{}, err
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
		return Session{}, httpapi.Forbidden("HMAC incorrect")
	}
	if err := s.CheckPasswordPolicy(req.Password); err != nil {
		return Session{}, err
	}
	if err := s.CreateUser(ctx, userID, req.Password, req.Admin); err != nil {
		return Session{}, err
	}
	if req.DisplayName != "" {
		err := s.DB.Write(ctx, func(q storage.Q) error { return q.SetProfile(ctx, userID, req.DisplayName, "") })
		if err != nil {
			return Session{}, err
		}
	}
	if req.InhibitLogin {
		return Session{UserID: userID}, nil
	}
	return s.Login(ctx, userID, "", "", false)
}
