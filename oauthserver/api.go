package oauthserver

import (
	"encoding/json"
	"net/http"
	"strings"

	"github.com/gorilla/mux"

	"github.com/redoubt-systems/redoubt/httpapi"
)

// Register adds the authorization server's routes: Matrix's discovery of
// it, client registration, its pages, and the op package's endpoints
// below Prefix.
func (s *Server) Register(r *mux.Router, h *httpapi.API) {
	rt := httpapi.Routes{R: r, API: h}
	rt.Public("/_matrix/client/v1/auth_metadata", s.metadata, "GET")
	rt.Public("/_matrix/client/unstable/org.matrix.msc2965/auth_metadata", s.metadata, "GET")
	rt.Public("/_matrix/client/unstable/org.matrix.msc2965/auth_issuer", s.authIssuer, "GET")
	page := func(path string, fn http.HandlerFunc, method string) {
		r.Handle(Prefix+path, http.MaxBytesHandler(limited(h, fn), 64<<10)).Methods(method)
	}
	page("register", s.registerClient, "POST")
	page("login", s.loginPage, "GET")
	page("login", s.passwordLogin, "POST")
	page("sso", s.ssoLogin, "GET")
	page("consent", s.consent, "POST")
	page("logout", s.logout, "POST")
	page("account", s.accountPage, "GET")
	page("account/end", s.endSession, "POST")
	r.PathPrefix(Prefix).Handler(http.StripPrefix(strings.TrimSuffix(Prefix, "/"), s.op))
}

// limited applies the server's rate limits (per address: registering
// clients and signing in count as registration and login do).
func limited(h *httpapi.API, fn http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if h.Limit != nil {
			if err := h.Limit(r, nil); err != nil {
				w.Header().Set("Retry-After", "10")
				http.Error(w, "too many requests: wait a little and try again", http.StatusTooManyRequests)
				return
			}
		}
		fn(w, r)
	}
}

// GET /_matrix/client/v1/auth_metadata
//
// The authorization server's metadata (RFC 8414), as Matrix clients
// discover it.
func (s *Server) metadata(*http.Request) httpapi.Response {
	iss := s.issuer()
	return httpapi.OK(map[string]any{
		"issuer":                                     iss,
		"authorization_endpoint":                     iss + "authorize",
		"token_endpoint":                             iss + "token",
		"revocation_endpoint":                        iss + "revoke",
		"registration_endpoint":                      iss + "register",
		"jwks_uri":                                   iss + "keys",
		"response_types_supported":                   []string{"code"},
		"response_modes_supported":                   []string{"query", "fragment"},
		"grant_types_supported":                      []string{"authorization_code", "refresh_token"},
		"code_challenge_methods_supported":           []string{"S256"},
		"token_endpoint_auth_methods_supported":      []string{"none"},
		"revocation_endpoint_auth_methods_supported": []string{"none"},
		"scopes_supported":                           []string{"openid", scopeAPI, scopeDevice + "*"},
		"id_token_signing_alg_values_supported":      []string{"RS256"},
		"account_management_uri":                     iss + "account",
		"account_management_actions_supported":       []string{"org.matrix.sessions_list", "org.matrix.session_view", "org.matrix.session_end"},
	})
}

// GET /_matrix/client/unstable/org.matrix.msc2965/auth_issuer
func (s *Server) authIssuer(*http.Request) httpapi.Response {
	return httpapi.OK(map[string]string{"issuer": s.issuer()})
}

// POST registration_endpoint: dynamic client registration (RFC 7591).
func (s *Server) registerClient(w http.ResponseWriter, r *http.Request) {
	var m Metadata
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(&m); err != nil {
		writeRegistrationError(w, badMetadata("the body is not a JSON object of client metadata"))
		return
	}
	id, m, err := s.register(r.Context(), m)
	if err != nil {
		writeRegistrationError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, http.StatusCreated, struct {
		Metadata
		ClientID         string `json:"client_id"`
		ClientIDIssuedAt int64  `json:"client_id_issued_at"`
	}{m, id, s.Now().Unix()})
}
