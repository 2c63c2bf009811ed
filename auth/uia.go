package auth

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/matrixerr"
	"github.com/redoubt-systems/redoubt/storage"
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
// proceeding happen in one request, and a challenge needs nothing
// remembered: the session ID is echoed for clients that expect one. The
// one stage completed outside the request, m.login.sso, is remembered by
// its session (CompleteSSO).
func challenge(stages []string, a *AuthDict, failure *matrixerr.Error) *matrixerr.Error {
	session := ""
	if a != nil {
		session = a.Session
	}
	if session == "" {
		session = RandomString(16)
	}
	flows := make([]any, len(stages))
	for i, stage := range stages {
		flows[i] = map[string]any{"stages": []string{stage}}
	}
	e := &matrixerr.Error{Kind: matrixerr.KindUnauthorized, Extra: map[string]any{
		"flows":   flows,
		"params":  map[string]any{},
		"session": session,
	}}
	if failure != nil {
		e.Code, e.Message = failure.Code, failure.Message
	}
	return e
}

const (
	stagePassword = "m.login.password"
	stageSSO      = "m.login.sso"
)

// uiaSSOLifetime is how long a session completed by signing in at a
// provider may be used to retry the request it was for.
const uiaSSOLifetime = 10 * time.Minute

// stagesFor are the ways a user can prove it is them: their password if
// password login is on and they have one, a provider they are linked to
// (or any, for an account with neither).
func (s *Service) stagesFor(ctx context.Context, userID string) ([]string, error) {
	var stages []string
	u, err := s.DB.R().User(ctx, userID)
	if err != nil {
		return nil, err
	}
	if s.Cfg.SSO.PasswordLogin && u.PasswordHash != "" {
		stages = append(stages, stagePassword)
	}
	if len(s.Cfg.SSO.Providers) > 0 {
		ids, err := s.DB.R().ExternalIDs(ctx, userID)
		if err != nil {
			return nil, err
		}
		if len(ids) > 0 || len(stages) == 0 {
			stages = append(stages, stageSSO)
		}
	}
	if len(stages) == 0 {
		stages = append(stages, stagePassword)
	}
	return stages, nil
}

// RequireUser completes user-interactive auth for userID, with their
// password or a sign-in at a provider, or returns the 401 that asks for
// one of them.
func (s *Service) RequireUser(ctx context.Context, userID string, a *AuthDict) error {
	stages, err := s.stagesFor(ctx, userID)
	if err != nil {
		return err
	}
	if a == nil || (a.Type == "" && a.Session == "") {
		return challenge(stages, a, nil)
	}
	switch {
	case (a.Type == "" || a.Type == stageSSO) && slices.Contains(stages, stageSSO):
		return s.checkSSO(ctx, userID, stages, a)
	case a.Type == stagePassword && slices.Contains(stages, stagePassword):
		return s.checkPassword(ctx, userID, stages, a)
	case a.Type == "":
		return challenge(stages, a, nil)
	}
	return challenge(stages, a, matrixerr.Forbidden("unsupported auth type %q", a.Type))
}

// checkSSO accepts a session that the user completed at a provider
// through the fallback page.
func (s *Service) checkSSO(ctx context.Context, userID string, stages []string, a *AuthDict) error {
	by, err := s.DB.R().UIASSOUser(ctx, a.Session, s.Now().UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return challenge(stages, a, nil)
	}
	if err != nil {
		return err
	}
	if by != userID {
		return matrixerr.Forbidden("the authenticated user is not the one making the request")
	}
	return nil
}

// CompleteSSO records that userID completed a user-interactive auth
// session by signing in at a provider.
func (s *Service) CompleteSSO(ctx context.Context, session, userID string) error {
	now := s.Now()
	return s.DB.Write(ctx, func(q Store) error {
		return q.CompleteUIASSO(ctx, session, userID, now.UnixMilli(), now.Add(uiaSSOLifetime).UnixMilli())
	})
}

func (s *Service) checkPassword(ctx context.Context, userID string, stages []string, a *AuthDict) error {
	user := a.Identifier.User
	if user == "" {
		user = a.User
	}
	id, err := s.ResolveUser(user)
	if err != nil {
		return challenge(stages, a, matrixerr.Forbidden("invalid username or password"))
	}
	// Authenticating as someone else does not authorise acting on this
	// account: a refusal, not another chance (Synapse answers the same).
	if id != userID {
		return matrixerr.Forbidden("the authenticated user is not the one making the request")
	}
	if err := s.VerifyPassword(ctx, userID, a.Password); err != nil {
		var he *matrixerr.Error
		if errors.As(err, &he) {
			return challenge(stages, a, he)
		}
		return err
	}
	return nil
}

// RequireDummy completes the m.login.dummy stage of open registration.
func RequireDummy(a *AuthDict) error {
	const stage = "m.login.dummy"
	if a == nil || a.Type == "" {
		return challenge([]string{stage}, a, nil)
	}
	if a.Type != stage {
		return challenge([]string{stage}, a, &matrixerr.Error{Code: spec.ErrorForbidden, Message: "unsupported auth type"})
	}
	return nil
}

// UseRegistrationToken completes the m.login.registration_token stage,
// counting one use of a valid token, or returns the 401 that asks for one.
func (s *Service) UseRegistrationToken(ctx context.Context, a *AuthDict) error {
	const stage = "m.login.registration_token"
	if a == nil || a.Type == "" {
		return challenge([]string{stage}, a, nil)
	}
	if a.Type != stage {
		return challenge([]string{stage}, a, matrixerr.Forbidden("unsupported auth type %q", a.Type))
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
		return challenge([]string{stage}, a, &matrixerr.Error{Kind: matrixerr.KindUnauthorized, Code: spec.ErrorForbidden, Message: "invalid registration token"})
	}
	return nil
}

// ReturnRegistrationToken gives back a use of a token whose registration
// failed after it was counted.
func (s *Service) ReturnRegistrationToken(ctx context.Context, token string) {
	_ = s.DB.Write(ctx, func(q Store) error { return q.ReturnRegistrationToken(ctx, token) })
}
