// Package httpapi is the edge between HTTP and Redoubt's handlers: handlers
// return a Response, and one wrapper does authentication, body limits, error
// mapping, JSON writing, panics and the access log.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf16"
	"unicode/utf8"

	"github.com/redoubt-systems/redoubt/caller"

	"github.com/gorilla/mux"
)

// Response is what a handler returns: a JSON body with a status, or an error.
type Response struct {
	Code   int
	JSON   any // marshalled; []byte and json.RawMessage are written as they are
	Err    error
	Header http.Header
	// Stream, if set, writes a body that is not JSON (media) after Header
	// and Code. An error it returns can only cut the response short.
	Stream func(w io.Writer) error
}

// OK is a 200 with a JSON body.
func OK(v any) Response { return Response{Code: http.StatusOK, JSON: v} }

// Fail is an error response; see toMatrix for how errors map.
func Fail(err error) Response { return Response{Err: err} }

// EmptyOr is {} on success, else the error: what most write endpoints answer.
func EmptyOr(err error) Response {
	if err != nil {
		return Fail(err)
	}
	return OK(Empty)
}

// StatusClientClosed is the status recorded for a request whose client went
// away before its answer (nginx's 499).
const StatusClientClosed = 499

// Empty is the {} many endpoints answer with.
var Empty = json.RawMessage(`{}`)

// Device is the caller of an authenticated request.
type Device = caller.Device

// Authenticator turns an access token into the device it belongs to.
type Authenticator interface {
	Authenticate(ctx context.Context, token string, from caller.Connection) (*Device, error)
}

// API builds the http.Handlers of a set of routes.
type API struct {
	Log     *slog.Logger
	Auth    Authenticator
	MaxBody int64
	// Limit, if set, may refuse a request (rate limits) before its
	// handler runs; dev is nil on endpoints without authentication.
	Limit func(r *http.Request, dev *Device) error
	// Observe, if set, is told of each request (metrics): its route
	// template, method, status and duration.
	Observe func(route, method string, status int, d time.Duration)
}

// Handler serves a request that needs no access token.
type Handler func(r *http.Request) Response

// AuthHandler serves a request from an authenticated device.
type AuthHandler func(r *http.Request, dev *Device) Response

// Public wraps a handler for an endpoint without authentication.
func (a *API) Public(h Handler) http.Handler {
	return a.wrap(func(r *http.Request) Response {
		if a.Limit != nil {
			if err := a.Limit(r, nil); err != nil {
				return Fail(err)
			}
		}
		return h(r)
	})
}

// Authed wraps a handler for an endpoint that requires an access token.
func (a *API) Authed(h AuthHandler) http.Handler {
	return a.wrap(func(r *http.Request) Response {
		dev, err := a.authenticate(r)
		if err != nil {
			return Fail(err)
		}
		if a.Limit != nil {
			if err := a.Limit(r, dev); err != nil {
				return Fail(err)
			}
		}
		return h(r, dev)
	})
}

// Optional wraps a handler that accepts an access token but does not need one.
func (a *API) Optional(h AuthHandler) http.Handler {
	return a.wrap(func(r *http.Request) Response {
		if AccessToken(r) == "" {
			return h(r, nil)
		}
		dev, err := a.authenticate(r)
		if err != nil {
			return Fail(err)
		}
		return h(r, dev)
	})
}

func (a *API) authenticate(r *http.Request) (*Device, error) {
	token := AccessToken(r)
	if token == "" {
		return nil, MissingToken("missing access token")
	}
	return a.Auth.Authenticate(r.Context(), token, caller.Connection{IP: clientIP(r), UserAgent: r.UserAgent()})
}

// AccessToken returns the request's access token, from the Authorization
// header or the access_token query parameter.
func AccessToken(r *http.Request) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if t, ok := strings.CutPrefix(h, "Bearer "); ok {
			return strings.TrimSpace(t)
		}
		return ""
	}
	return r.URL.Query().Get("access_token")
}

func (a *API) wrap(h Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		r.Body = http.MaxBytesReader(w, r.Body, a.MaxBody)
		res := a.serve(h, r)
		a.write(w, r, res, start)
	})
}

func (a *API) serve(h Handler, r *http.Request) (res Response) {
	defer func() {
		if p := recover(); p != nil {
			a.Log.Error("panic", "panic", p, "stack", string(debug.Stack()))
			res = Fail(Internal("internal server error"))
		}
	}()
	vars := mux.Vars(r)
	for k, v := range vars {
		d, err := url.PathUnescape(v)
		if err != nil {
			return Fail(InvalidParam("invalid path parameter %s", k))
		}
		vars[k] = d
	}
	return h(r)
}

func (a *API) write(w http.ResponseWriter, r *http.Request, res Response, start time.Time) {
	for k, vs := range res.Header {
		w.Header()[k] = vs
	}
	var body any = res.JSON
	code := res.Code
	if res.Stream != nil && res.Err == nil {
		if code == 0 {
			code = http.StatusOK
		}
		w.WriteHeader(code)
		if err := res.Stream(w); err != nil {
			a.Log.Warn("response cut short", "route", routeName(r), "err", err)
		}
		a.Log.Debug("request", "method", r.Method, "route", routeName(r), "status", code,
			"ms", float64(time.Since(start).Microseconds())/1000)
		if a.Observe != nil {
			a.Observe(routeName(r), r.Method, code, time.Since(start))
		}
		return
	}
	if res.Err != nil && r.Context().Err() != nil && isInternal(res.Err) {
		// The client hung up (say, on a /sync it no longer waits for), or
		// the server is stopping, and the work in hand failed for it (the
		// database call interrupted): not a failure of the server's. 499,
		// as proxies log it. A client still there (a stop) is told to try
		// again, rather than given an empty 200.
		a.Log.Debug("request", "method", r.Method, "route", routeName(r), "status", StatusClientClosed,
			"ms", float64(time.Since(start).Microseconds())/1000, "err", res.Err)
		if a.Observe != nil {
			a.Observe(routeName(r), r.Method, StatusClientClosed, time.Since(start))
		}
		w.Header().Set("Retry-After", "1")
		WriteJSON(w, http.StatusServiceUnavailable, map[string]string{"errcode": "M_UNKNOWN", "error": "the request was cut short: try again"})
		return
	}
	if res.Err != nil {
		e, internal := toMatrix(res.Err)
		if internal {
			a.Log.Error("request failed", "route", routeName(r), "method", r.Method, "err", res.Err)
		}
		if e.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64(math.Ceil(e.RetryAfter.Seconds())), 10))
		}
		code, body = statusOf(e), errorBody(e)
	}
	if code == 0 {
		code = http.StatusOK
	}
	if body == nil {
		body = Empty
	}
	WriteJSON(w, code, body)
	level := slog.LevelDebug
	switch {
	case code >= 500:
		level = slog.LevelError
	case code >= 400 && code != http.StatusUnauthorized && code != http.StatusNotFound:
		level = slog.LevelInfo
	}
	// The route's template, never the raw URL: paths carry user IDs and
	// queries may carry access tokens.
	a.Log.Log(r.Context(), level, "request", "method", r.Method, "route", routeName(r), "status", code,
		"ms", float64(time.Since(start).Microseconds())/1000)
	if a.Observe != nil {
		a.Observe(routeName(r), r.Method, code, time.Since(start))
	}
}

func isInternal(err error) bool {
	_, internal := toMatrix(err)
	return internal
}

// WriteJSON writes a JSON body with its status.
func WriteJSON(w http.ResponseWriter, code int, body any) {
	var b []byte
	switch v := body.(type) {
	case json.RawMessage:
		b = v
	case []byte:
		b = v
	default:
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(v); err != nil {
			code, b = http.StatusInternalServerError, []byte(`{"errcode":"M_UNKNOWN","error":"internal server error"}`)
		} else {
			b = bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_, _ = w.Write(b)
}

func routeName(r *http.Request) string {
	if route := mux.CurrentRoute(r); route != nil {
		if t, err := route.GetPathTemplate(); err == nil {
			return t
		}
	}
	return "unmatched"
}

// ReadBody reads a request body, answering M_TOO_LARGE past the API's limit.
func ReadBody(r *http.Request) ([]byte, error) {
	b, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		return nil, TooLarge("request body too large")
	}
	if err != nil {
		return nil, BadJSON("could not read request body")
	}
	return b, nil
}

// Decode reads a JSON object body into v. Invalid JSON is M_NOT_JSON; JSON of
// the wrong shape is M_BAD_JSON. An empty body decodes as {}.
func Decode(r *http.Request, v any) error {
	b, err := ReadBody(r)
	if err != nil {
		return err
	}
	return DecodeBytes(b, v)
}

// DecodeBytes is Decode for a body already read.
func DecodeBytes(b []byte, v any) error {
	if len(bytes.TrimSpace(b)) == 0 {
		b = []byte("{}")
	}
	if !json.Valid(b) {
		return NotJSON("request body is not valid JSON")
	}
	// encoding/json lets invalid UTF-8 and unpaired surrogate escapes
	// through; stored and sent on, either makes whole responses invalid
	// for strict clients.
	if !ValidText(b) {
		return NotJSON("request body is not valid UTF-8 JSON")
	}
	if depth, keys := shape(b); depth > maxDepth || keys > maxKeys {
		return BadJSON("request body is nested too deeply or has too many keys (at most %d levels, %d keys)", maxDepth, maxKeys)
	}
	if t := bytes.TrimSpace(b); t[0] != '{' {
		return BadJSON("request body must be a JSON object")
	}
	if err := json.Unmarshal(b, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return BadJSON("%s has the wrong type", te.Field)
		}
		return BadJSON("request body has the wrong shape")
	}
	return nil
}

// CORS answers preflight requests and adds the CORS headers Element Web needs
// to every response.
func CORS(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Access-Control-Allow-Origin", "*")
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Origin, X-Requested-With, Content-Type, Accept, Authorization, Date")
		if r.Method == http.MethodOptions {
			WriteJSON(w, http.StatusOK, Empty)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Routes registers handlers on a router, one route a line.
type Routes struct {
	R   *mux.Router
	API *API
}

// Public adds an endpoint that needs no access token.
func (rt Routes) Public(path string, fn Handler, methods ...string) {
	rt.R.Handle(path, rt.API.Public(fn)).Methods(methods...)
}

// Authed adds an endpoint that requires an access token.
func (rt Routes) Authed(path string, fn AuthHandler, methods ...string) {
	rt.R.Handle(path, rt.API.Authed(fn)).Methods(methods...)
}

// Optional adds an endpoint that accepts an access token but does not need one.
func (rt Routes) Optional(path string, fn AuthHandler, methods ...string) {
	rt.R.Handle(path, rt.API.Optional(fn)).Methods(methods...)
}

// NewRouter is a gorilla/mux router set up as the spec needs: paths are not
// cleaned (IDs may contain slashes, encoded), and unknown paths or methods
// answer M_UNRECOGNIZED.
func (a *API) NewRouter() *mux.Router {
	r := mux.NewRouter().SkipClean(true).UseEncodedPath()
	r.NotFoundHandler = a.Public(func(*http.Request) Response { return Fail(Unrecognized("unrecognized request")) })
	r.MethodNotAllowedHandler = a.Public(func(*http.Request) Response { return Fail(MethodNotAllowed("method not allowed")) })
	return r
}

// Limits on a JSON body's shape: no Matrix request needs more, and deeply
// nested or key-heavy bodies cost memory out of proportion to their size.
const (
	maxDepth = 32
	maxKeys  = 10000
)

// shape returns a valid JSON document's nesting depth and number of object
// keys, in one pass over its bytes.
func shape(b []byte) (depth, keys int) {
	d, inString, escaped := 0, false, false
	for _, c := range b {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			d++
			depth = max(depth, d)
		case c == '}' || c == ']':
			d--
		case c == ':':
			keys++
		}
	}
	return depth, keys
}

// ValidText reports whether a JSON document is valid UTF-8 and none of its
// strings escape half of a UTF-16 surrogate pair.
func ValidText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	inString := false
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case !inString:
			inString = c == '"'
		case c == '"':
			inString = false
		case c == '\\':
			if i+1 < len(b) && b[i+1] == 'u' {
				r, ok := hex4(b, i+2)
				switch {
				case !ok:
				case utf16.IsSurrogate(r) && r < 0xdc00:
					// A high surrogate must be followed by a low one.
					r2, ok2 := hex4(b, i+8)
					if i+7 >= len(b) || b[i+6] != '\\' || b[i+7] != 'u' || !ok2 || r2 < 0xdc00 || r2 > 0xdfff {
						return false
					}
					i += 6
				case utf16.IsSurrogate(r):
					return false // a low surrogate on its own
				}
			}
			i++ // the escaped character
		}
	}
	return true
}

func hex4(b []byte, at int) (rune, bool) {
	if at+4 > len(b) {
		return 0, false
	}
	n, err := strconv.ParseUint(string(b[at:at+4]), 16, 32)
	return rune(n), err == nil
}

// clientIP is the client's address, without its port.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
