package httpapi

import (
	"io"
	"net/http"
)

// Redirect is a 302 to url: a browser's next step in a sign-in.
func Redirect(url string) Response {
	return Response{Code: http.StatusFound, Header: http.Header{
		"Location":      {url},
		"Cache-Control": {"no-store"},
	}, Stream: func(io.Writer) error { return nil }}
}

// Page is an HTML page for a browser. Pages may carry a login token, so
// they are not kept by caches, and not shown inside another site's frames
// (where a click on them could be someone else's).
func Page(page []byte) Response {
	return Response{Code: http.StatusOK, Header: http.Header{
		"Content-Type":            {"text/html; charset=utf-8"},
		"Cache-Control":           {"no-store"},
		"X-Frame-Options":         {"DENY"},
		"Content-Security-Policy": {"frame-ancestors 'none'; default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'"},
		"Referrer-Policy":         {"no-referrer"},
	}, Stream: func(w io.Writer) error {
		_, err := w.Write(page)
		return err
	}}
}

// SignInCookie ties a sign-in at an identity provider to the browser that
// began it: the callback and the sign-in pages accept only that browser.
const SignInCookie = "redoubt_sso"

// BindSignIn sets the sign-in cookie on a response.
func BindSignIn(h http.Header, value string, secure bool) {
	h.Add("Set-Cookie", (&http.Cookie{Name: SignInCookie, Value: value, Path: "/", HttpOnly: true, Secure: secure,
		SameSite: http.SameSiteLaxMode, MaxAge: 600}).String())
}

// SignInBinding is the browser's sign-in cookie, or "".
func SignInBinding(r *http.Request) string {
	c, err := r.Cookie(SignInCookie)
	if err != nil {
		return ""
	}
	return c.Value
}
