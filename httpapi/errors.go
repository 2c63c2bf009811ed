package httpapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/matrix-org/gomatrixserverlib"
	"github.com/matrix-org/gomatrixserverlib/spec"

	"github.com/redoubt-systems/redoubt/storage"
)

// Error is a Matrix error with its HTTP status: what a client is told.
type Error struct {
	Status  int
	Code    spec.MatrixErrorCode
	Message string
	// Extra fields merged into the error body (e.g. retry_after_ms).
	Extra map[string]any
	// RetryAfter, if set, is also sent as the Retry-After header.
	RetryAfter time.Duration
}

// LimitExceeded is 429 M_LIMIT_EXCEEDED with the wait, in the body
// (retry_after_ms) and the Retry-After header (whole seconds, rounded up).
func LimitExceeded(wait time.Duration, format string, args ...any) *Error {
	return &Error{Status: http.StatusTooManyRequests, Code: spec.ErrorLimitExceeded, Message: fmt.Sprintf(format, args...),
		Extra: map[string]any{"retry_after_ms": wait.Milliseconds()}, RetryAfter: wait}
}

func (e *Error) Error() string { return fmt.Sprintf("%d %s: %s", e.Status, e.Code, e.Message) }

func (e *Error) body() map[string]any {
	b := map[string]any{}
	// A user-interactive auth challenge is a 401 without an errcode.
	if e.Code != "" {
		b["errcode"], b["error"] = e.Code, e.Message
	}
	for k, v := range e.Extra {
		b[k] = v
	}
	return b
}

func newErr(status int, code spec.MatrixErrorCode) func(format string, args ...any) *Error {
	return func(format string, args ...any) *Error {
		return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
	}
}

// The errors handlers return. Each names the spec's status for its code.
var (
	BadRequest       = newErr(http.StatusBadRequest, spec.ErrorUnknown)
	NotJSON          = newErr(http.StatusBadRequest, spec.ErrorNotJSON)
	BadJSON          = newErr(http.StatusBadRequest, spec.ErrorBadJSON)
	MissingParam     = newErr(http.StatusBadRequest, spec.ErrorMissingParam)
	InvalidParam     = newErr(http.StatusBadRequest, spec.ErrorInvalidParam)
	InvalidUsername  = newErr(http.StatusBadRequest, spec.ErrorInvalidUsername)
	UserInUse        = newErr(http.StatusBadRequest, spec.ErrorUserInUse)
	WeakPassword     = newErr(http.StatusBadRequest, spec.ErrorWeakPassword)
	BadAlias         = newErr(http.StatusBadRequest, spec.ErrorBadAlias)
	UnsupportedRoom  = newErr(http.StatusBadRequest, spec.ErrorUnsupportedRoomVersion)
	MissingToken     = newErr(http.StatusUnauthorized, spec.ErrorMissingToken)
	Forbidden        = newErr(http.StatusForbidden, spec.ErrorForbidden)
	GuestForbidden   = newErr(http.StatusForbidden, spec.ErrorGuestAccessForbidden)
	UserDeactivated  = newErr(http.StatusForbidden, "M_USER_DEACTIVATED")
	NotFound         = newErr(http.StatusNotFound, spec.ErrorNotFound)
	Unrecognized     = newErr(http.StatusNotFound, spec.ErrorUnrecognized)
	MethodNotAllowed = newErr(http.StatusMethodNotAllowed, spec.ErrorUnrecognized)
	Conflict         = newErr(http.StatusConflict, spec.ErrorUnknown)
	TooLarge         = newErr(http.StatusRequestEntityTooLarge, "M_TOO_LARGE")
	Internal         = newErr(http.StatusInternalServerError, spec.ErrorUnknown)
)

// UnknownToken is 401 M_UNKNOWN_TOKEN; softLogout tells the client its
// session merely expired (refreshable).
func UnknownToken(msg string, softLogout bool) *Error {
	e := &Error{Status: http.StatusUnauthorized, Code: spec.ErrorUnknownToken, Message: msg}
	if softLogout {
		e.Extra = map[string]any{"soft_logout": true}
	}
	return e
}

// StatusOf is the HTTP status an error is answered with: below 500, the
// request was refused; 500, something failed.
func StatusOf(err error) int {
	e, _ := toMatrix(err)
	return e.Status
}

// toMatrix maps any error to what the client sees. Domain and storage errors
// have fixed mappings; anything else is a 500 with no internal detail, and
// reports internal=true so the caller logs the cause.
func toMatrix(err error) (e *Error, internal bool) {
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
