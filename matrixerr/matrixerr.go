// Package matrixerr is the errors the domain returns for a client to see:
// a Matrix error code, a message safe to show, and the kind of failure.
// The domain (rooms, auth, streams, ...) returns these and knows nothing of
// HTTP; httpapi answers them, taking the status from the kind, in one place.
package matrixerr

import (
	"errors"
	"fmt"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/storage"
)

// Kind is what went wrong, as the client is to understand it.
type Kind int

// The kinds; httpapi gives each its status (in brackets).
const (
	KindInvalid          Kind = iota // the request is wrong (400)
	KindUnauthorized                 // no, or no valid, credentials (401)
	KindForbidden                    // not allowed (403)
	KindNotFound                     // no such thing (404)
	KindMethodNotAllowed             // (405)
	KindConflict                     // clashes with what exists (409)
	KindGone                         // was there, and was deleted (410)
	KindTooLarge                     // (413)
	KindRateLimited                  // too many requests (429)
	KindInternal                     // the server failed (500)
	KindBadGateway                   // a server it called failed (502)
	KindGatewayTimeout               // a server it called did not answer (504)
)

// Error is a Matrix error: what a client is told.
type Error struct {
	Kind    Kind
	Code    spec.MatrixErrorCode
	Message string
	// Extra fields merged into the error body (e.g. retry_after_ms).
	Extra map[string]any
	// RetryAfter, if set, is also sent as the Retry-After header.
	RetryAfter time.Duration
}

// Error is the message: plain words, as the command line prints them.
func (e *Error) Error() string { return e.Message }

func newErr(kind Kind, code spec.MatrixErrorCode) func(format string, args ...any) *Error {
	return func(format string, args ...any) *Error {
		return &Error{Kind: kind, Code: code, Message: fmt.Sprintf(format, args...)}
	}
}

// The errors the spec defines, each of its kind.
var (
	BadRequest       = newErr(KindInvalid, spec.ErrorUnknown)
	NotJSON          = newErr(KindInvalid, spec.ErrorNotJSON)
	BadJSON          = newErr(KindInvalid, spec.ErrorBadJSON)
	MissingParam     = newErr(KindInvalid, spec.ErrorMissingParam)
	InvalidParam     = newErr(KindInvalid, spec.ErrorInvalidParam)
	InvalidUsername  = newErr(KindInvalid, spec.ErrorInvalidUsername)
	UserInUse        = newErr(KindInvalid, spec.ErrorUserInUse)
	WeakPassword     = newErr(KindInvalid, spec.ErrorWeakPassword)
	BadAlias         = newErr(KindInvalid, spec.ErrorBadAlias)
	UnsupportedRoom  = newErr(KindInvalid, spec.ErrorUnsupportedRoomVersion)
	MissingToken     = newErr(KindUnauthorized, spec.ErrorMissingToken)
	Forbidden        = newErr(KindForbidden, spec.ErrorForbidden)
	GuestForbidden   = newErr(KindForbidden, spec.ErrorGuestAccessForbidden)
	UserDeactivated  = newErr(KindForbidden, "M_USER_DEACTIVATED")
	NotFound         = newErr(KindNotFound, spec.ErrorNotFound)
	Unrecognized     = newErr(KindNotFound, spec.ErrorUnrecognized)
	MethodNotAllowed = newErr(KindMethodNotAllowed, spec.ErrorUnrecognized)
	Conflict         = newErr(KindConflict, spec.ErrorUnknown)
	TooLarge         = newErr(KindTooLarge, "M_TOO_LARGE")
	Internal         = newErr(KindInternal, spec.ErrorUnknown)
	BadGateway       = newErr(KindBadGateway, spec.ErrorUnknown)
)

// LimitExceeded is M_LIMIT_EXCEEDED with the wait, in the body
// (retry_after_ms) and the Retry-After header.
func LimitExceeded(wait time.Duration, format string, args ...any) *Error {
	return &Error{Kind: KindRateLimited, Code: spec.ErrorLimitExceeded, Message: fmt.Sprintf(format, args...),
		Extra: map[string]any{"retry_after_ms": wait.Milliseconds()}, RetryAfter: wait}
}

// UnknownToken is M_UNKNOWN_TOKEN; softLogout tells the client its
// session merely expired (refreshable).
func UnknownToken(msg string, softLogout bool) *Error {
	e := &Error{Kind: KindUnauthorized, Code: spec.ErrorUnknownToken, Message: msg}
	if softLogout {
		e.Extra = map[string]any{"soft_logout": true}
	}
	return e
}

// From maps any error to what the client sees. Matrix errors are what
// they are; storage's and gomatrixserverlib's (auth rules, event
// validation) have fixed mappings; anything else is internal, with no
// detail for the client, and internal=true so the caller logs the cause.
func From(err error) (e *Error, internal bool) {
	var me *Error
	var notAllowed *gomatrixserverlib.NotAllowed
	var validation gomatrixserverlib.EventValidationError
	var validationPtr *gomatrixserverlib.EventValidationError
	var badJSON gomatrixserverlib.BadJSONError
	if errors.As(err, &validationPtr) && validationPtr != nil {
		validation = *validationPtr // the auth rules return it by pointer
	}
	switch {
	case errors.As(err, &me):
		return me, false
	case errors.Is(err, storage.ErrNotFound):
		return NotFound("not found"), false
	case errors.Is(err, storage.ErrConflict):
		return Conflict("already exists"), false
	case errors.As(err, &notAllowed):
		return Forbidden("%s", notAllowed.Message), false
	case validationPtr != nil || errors.As(err, &validation):
		if validation.Code == gomatrixserverlib.EventValidationTooLarge {
			return TooLarge("event too large"), false
		}
		return BadJSON("%s", validation.Message), false
	case errors.As(err, &badJSON):
		return BadJSON("the event is not valid canonical JSON"), false
	}
	return Internal("internal server error"), true
}
