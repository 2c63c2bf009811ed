package httpapi

import (
	"net/http"

	"github.com/redoubt-systems/redoubt/matrixerr"
)

// Error is a Matrix error (matrixerr): what a client is told. The domain
// returns them; this package alone gives them an HTTP status.
type Error = matrixerr.Error

// status is the HTTP status of each kind of error.
var status = map[matrixerr.Kind]int{
	matrixerr.KindInvalid: http.StatusBadRequest, matrixerr.KindUnauthorized: http.StatusUnauthorized,
	matrixerr.KindForbidden: http.StatusForbidden, matrixerr.KindNotFound: http.StatusNotFound,
	matrixerr.KindMethodNotAllowed: http.StatusMethodNotAllowed, matrixerr.KindConflict: http.StatusConflict,
	matrixerr.KindGone: http.StatusGone, matrixerr.KindTooLarge: http.StatusRequestEntityTooLarge,
	matrixerr.KindRateLimited: http.StatusTooManyRequests, matrixerr.KindInternal: http.StatusInternalServerError,
	matrixerr.KindBadGateway: http.StatusBadGateway, matrixerr.KindGatewayTimeout: http.StatusGatewayTimeout,
}

// statusOf is an error's HTTP status.
func statusOf(e *Error) int { return status[e.Kind] }

// body is an error's JSON body.
func errorBody(e *Error) map[string]any {
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

// The errors handlers return (matrixerr's, by their usual names here).
var (
	BadRequest       = matrixerr.BadRequest
	NotJSON          = matrixerr.NotJSON
	BadJSON          = matrixerr.BadJSON
	MissingParam     = matrixerr.MissingParam
	InvalidParam     = matrixerr.InvalidParam
	InvalidUsername  = matrixerr.InvalidUsername
	UserInUse        = matrixerr.UserInUse
	WeakPassword     = matrixerr.WeakPassword
	BadAlias         = matrixerr.BadAlias
	UnsupportedRoom  = matrixerr.UnsupportedRoom
	MissingToken     = matrixerr.MissingToken
	Forbidden        = matrixerr.Forbidden
	GuestForbidden   = matrixerr.GuestForbidden
	UserDeactivated  = matrixerr.UserDeactivated
	NotFound         = matrixerr.NotFound
	Unrecognized     = matrixerr.Unrecognized
	MethodNotAllowed = matrixerr.MethodNotAllowed
	Conflict         = matrixerr.Conflict
	TooLarge         = matrixerr.TooLarge
	Internal         = matrixerr.Internal
	LimitExceeded    = matrixerr.LimitExceeded
	UnknownToken     = matrixerr.UnknownToken
)

// StatusOf is the HTTP status an error is answered with: below 500, the
// request was refused; 500, something failed.
func StatusOf(err error) int {
	e, _ := toMatrix(err)
	return statusOf(e)
}

// toMatrix maps any error to what the client sees (matrixerr.From).
func toMatrix(err error) (e *Error, internal bool) { return matrixerr.From(err) }
