package oauthserver

import (
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
)

// The scopes of Matrix's OAuth 2.0 API: access to the Client-Server API,
// and the device the session is. The unstable forms (MSC2967) are what
// matrix-js-sdk and Element still ask for.
const (
	scopeAPI             = "urn:matrix:client:api:*"
	scopeAPIUnstable     = "urn:matrix:org.matrix.msc2967.client:api:*"
	scopeDevice          = "urn:matrix:client:device:"
	scopeDeviceUnstable  = "urn:matrix:org.matrix.msc2967.client:device:"
	scopeOfflineAccess   = "offline_access"
	requestLifetime      = 15 * time.Minute
	idTokenLifetime      = 5 * time.Minute
	browserSessionLength = time.Hour
)

// deviceOf returns the device a scope list names, and whether it names
// exactly one, well formed.
func deviceOf(scopes []string) (string, bool) {
	device, n := "", 0
	for _, s := range scopes {
		d, ok := strings.CutPrefix(s, scopeDevice)
		if !ok {
			d, ok = strings.CutPrefix(s, scopeDeviceUnstable)
		}
		if ok {
			device, n = d, n+1
		}
	}
	if n != 1 || len(device) < 1 || len(device) > 255 || strings.ContainsFunc(device, func(r rune) bool {
		return !(r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~!$&'()*+,;=:@/", r))
	}) {
		return "", false
	}
	return device, true
}

// allowedScope is a scope a client may ask for.
func allowedScope(s string) bool {
	switch {
	case s == scopeAPI, s == scopeAPIUnstable, s == scopeOfflineAccess:
		return true
	case strings.HasPrefix(s, scopeDevice), strings.HasPrefix(s, scopeDeviceUnstable):
		return true
	}
	return false
}

// authRequest is an authorization request as the client made it, and,
// once allowed, who allowed it. It is kept as JSON in oauth_requests.
type authRequest struct {
	ID            string              `json:"-"`
	ClientID      string              `json:"client_id"`
	RedirectURI   string              `json:"redirect_uri"`
	Scopes        []string            `json:"scopes"`
	State         string              `json:"state"`
	Nonce         string              `json:"nonce"`
	ResponseType  oidc.ResponseType   `json:"response_type"`
	ResponseMode  oidc.ResponseMode   `json:"response_mode"`
	CodeChallenge *oidc.CodeChallenge `json:"code_challenge"`

	UserID       string    `json:"-"`
	AuthTime     time.Time `json:"-"`
	AuthProvider string    `json:"-"`
	SID          string    `json:"-"`
}

func (r *authRequest) GetID() string                         { return r.ID }
func (r *authRequest) GetACR() string                        { return "" }
func (r *authRequest) GetAMR() []string                      { return nil }
func (r *authRequest) GetAudience() []string                 { return []string{r.ClientID} }
func (r *authRequest) GetAuthTime() time.Time                { return r.AuthTime }
func (r *authRequest) GetClientID() string                   { return r.ClientID }
func (r *authRequest) GetCodeChallenge() *oidc.CodeChallenge { return r.CodeChallenge }
func (r *authRequest) GetNonce() string                      { return r.Nonce }
func (r *authRequest) GetRedirectURI() string                { return r.RedirectURI }
func (r *authRequest) GetResponseType() oidc.ResponseType    { return r.ResponseType }
func (r *authRequest) GetResponseMode() oidc.ResponseMode    { return r.ResponseMode }
func (r *authRequest) GetState() string                      { return r.State }
func (r *authRequest) GetSubject() string                    { return r.UserID }
func (r *authRequest) Done() bool                            { return r.UserID != "" }

// GetScopes are the scopes asked for. A Matrix session always gets a
// refresh token (clients rely on it), which the op package gives only
// with offline_access: it is implied.
func (r *authRequest) GetScopes() []string {
	if slices.Contains(r.Scopes, scopeOfflineAccess) {
		return r.Scopes
	}
	return append(slices.Clone(r.Scopes), scopeOfflineAccess)
}

// refreshRequest is a device's grant, found by its refresh token.
type refreshRequest struct {
	UserID, DeviceID, ClientID string
	Scopes                     []string
	AuthTime                   time.Time
}

func (r *refreshRequest) GetAMR() []string                 { return nil }
func (r *refreshRequest) GetAudience() []string            { return []string{r.ClientID} }
func (r *refreshRequest) GetAuthTime() time.Time           { return r.AuthTime }
func (r *refreshRequest) GetClientID() string              { return r.ClientID }
func (r *refreshRequest) GetScopes() []string              { return r.Scopes }
func (r *refreshRequest) GetSubject() string               { return r.UserID }
func (r *refreshRequest) SetCurrentScopes(scopes []string) { r.Scopes = scopes }
