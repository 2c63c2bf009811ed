package auth

import (
	"context"
	"errors"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/matrixerr"
)

// AuthDict is the "auth" object of a user-interactive request.
type AuthDict struct {
	Type       string `json:"type"`
	Session    string `json:"session"`
	Password   string `json:"password"`
	Token      string `json:"token"` // m.login.registration_token
	User       string `json:"user"`  // deprecated form of identifier
	Identifier struct {
		Type string `json:"type"`
		User string `json:"user"`
	} `json:"identifier"`
}

// Every flow Redoubt offers has a single stage, so completing it and
// proceeding happen in one request: nothing about a UIA session needs to be
// remembered between requests. The session ID is echoed for clients that
// expect one.
func challenge(stage string, a *AuthDict, failure *matrixerr.Error) *matrixerr.Error {
	session := ""
	if a != nil {
		session = a.Session
	}
	if session == "" {
		session = RandomString(16)
	}
	e := &matrixerr.Error{Kind: matrixerr.KindUnauthorized, Extra: map[string]any{
		"flows":   []any{map[string]any{"stages": []string{stage}}},
		"params":  map[string]any{},
		"session": session,
	}}
	if failure != nil {
		e.Code, e.Message = failure.Code, failure.Message
	}
	return e
}

// RequirePassword completes user-interactive auth with the m.login.password
// stage for userID, or returns the 401 that asks for it.
func (s *Service) RequirePassword(ctx context.Context, userID string, a *AuthDict) error {
	const stage = "m.login.password"
	if a == nil || a.Type == "" {
		return challenge(stage, a, nil)
	}
	if a.Type != stage {
		return challenge(stage, a, matrixerr.Forbidden("unsupported auth type %q", a.Type))
	}
	user := a.Identifier.User
	if user == "" {
		user = a.User
	}
	id, err := s.ResolveUser(user)
	if err != nil {
		return challenge(stage, a, matrixerr.Forbidden("invalid username or password"))
	}
	// Authenticating as someone else does not authorise acting on this
	// account: a refusal, not another chance (Synapse answers the same).
	if id != userID {
		return matrixerr.Forbidden("the authenticated user is not the one making the request")
	}
	if err := s.VerifyPassword(ctx, userID, a.Password); err != nil {
		var he *matrixerr.Error
		if errors.As(err, &he) {
			return challenge(stage, a, he)
		}
		return err
	}
	return nil
}

// RequireDummy completes the m.login.dummy stage of open registration.
func RequireDummy(a *AuthDict) error {
	const stage = "m.login.dummy"
	if a == nil || a.Type == "" {
		return challenge(stage, a, nil)
	}
	if a.Type != stage {
		return challenge(stage, a, &matrixerr.Error{Code: spec.ErrorForbidden, Message: "unsupported auth type"})
	}
	return nil
}

// UseRegistrationToken completes the m.login.registration_token stage,
// counting one use of a valid token, or returns the 401 that asks for one.
func (s *Service) UseRegistrationToken(ctx context.Context, a *AuthDict) error {
	const stage = "m.login.registration_token"
	if a == nil || a.Type == "" {
		return challenge(stage, a, nil)
	}
	if a.Type != stage {
		return challenge(stage, a, matrixerr.Forbidden("unsupported auth type %q", a.Type))
	}
	var ok bool
	err := s.DB.Write(ctx, func(q Store) error {
		var err error
		ok, err = q.UseRegistrationToken(ctx, a.Token, s.Now().UnixMilli())
		return err
	})
	if err != nil {
		return err
	}
	if !ok {
		return challenge(stage, a, &matrixerr.Error{Kind: matrixerr.KindUnauthorized, Code: spec.ErrorForbidden, Message: "invalid registration token"})
	}
	return nil
}

// ReturnRegistrationToken gives back a use of a token whose registration
// failed after it was counted.
func (s *Service) ReturnRegistrationToken(ctx context.Context, token string) {
	_ = s.DB.Write(ctx, func(q Store) error { return q.ReturnRegistrationToken(ctx, token) })
}
