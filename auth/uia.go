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
// one of them. description says what the request does ("remove a
// session"), for the page a sign-in at a provider begins on.
func (s *Service) RequireUser(ctx context.Context, userID, description string, a *AuthDict) error {
	stages, err := s.stagesFor(ctx, userID)
	if err != nil {
		return err
	}
	ask := func(failure *matrixerr.Error) error {
		return s.challengeFor(ctx, userID, description, stages, a, failure)
	}
	if a == nil || (a.Type == "" && a.Session == "") {
		return ask(nil)
	}
	switch {
	case (a.Type == "" || a.Type == stageSSO) && slices.Contains(stages, stageSSO):
		// A session the user completed at a provider, used once.
		var used bool
		err := s.DB.Write(ctx, func(q Store) error {
			var err error
			used, err = q.UseUIASSO(ctx, a.Session, userID, s.Now().UnixMilli())
			return err
		})
		if err != nil || used {
			return err
		}
		return ask(nil)
	case a.Type == stagePassword && slices.Contains(stages, stagePassword):
		return s.checkPassword(ctx, userID, a, ask)
	case a.Type == "":
		return ask(nil)
	}
	return ask(matrixerr.Forbidden("unsupported auth type %q", a.Type))
}

// challengeFor is the 401 that asks for one of the stages. Where a
// provider's sign-in is one, its session is recorded with its user and
// what it is for: the fallback page says so, and only that user's sign-in
// completes it. A session of another user's gets a new ID.
func (s *Service) challengeFor(ctx context.Context, userID, description string, stages []string, a *AuthDict, failure *matrixerr.Error) error {
	e := challenge(stages, a, failure)
	if !slices.Contains(stages, stageSSO) {
		return e
	}
	now := s.Now()
	err := s.DB.Write(ctx, func(q Store) error {
		for range 2 {
			u := storage.UIASSO{Session: e.Extra["session"].(string), UserID: userID, Description: description}
			ok, err := q.StartUIASSO(ctx, u, now.UnixMilli(), now.Add(uiaSSOLifetime).UnixMilli())
			if err != nil || ok {
				return err
			}
			e.Extra["session"] = RandomString(16)
		}
		return errors.New("auth: no free session ID")
	})
	if err != nil {
		return err
	}
	return e
}

// SSOSession returns a user-interactive auth session a provider's sign-in
// may complete: whose, and what for.
func (s *Service) SSOSession(ctx context.Context, session string) (storage.UIASSO, error) {
	u, err := s.DB.R().UIASSOSession(ctx, session, s.Now().UnixMilli())
	if errors.Is(err, storage.ErrNotFound) {
		return u, matrixerr.NotFound("this confirmation is unknown or expired: start again from your app")
	}
	return u, err
}

// CompleteSSO records that userID completed a user-interactive auth
// session by signing in at a provider; only the session's own user can.
func (s *Service) CompleteSSO(ctx context.Context, session, userID string) error {
	err := s.DB.Write(ctx, func(q Store) error { return q.CompleteUIASSO(ctx, session, userID, s.Now().UnixMilli()) })
	if errors.Is(err, storage.ErrNotFound) {
		return matrixerr.Forbidden("you signed in as someone other than the account this confirmation is for")
	}
	return err
}

func (s *Service) checkPassword(ctx context.Context, userID string, a *AuthDict, ask func(*matrixerr.Error) error) error {
	user := a.Identifier.User
	if user == "" {
		user = a.User
	}
	id, err := s.ResolveUser(user)
	if err != nil {
		return ask(matrixerr.Forbidden("invalid username or password"))
	}
	// Authenticating as someone else does not authorise acting on this
	// account: a refusal, not another chance (Synapse answers the same).
	if id != userID {
		return matrixerr.Forbidden("the authenticated user is not the one making the request")
	}
	if err := s.VerifyPassword(ctx, userID, a.Password); err != nil {
		var he *matrixerr.Error
		if errors.As(err, &he) {
			return ask(he)
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
