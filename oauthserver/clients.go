package oauthserver

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"

	"github.com/redoubt-systems/redoubt/auth"
	"github.com/redoubt-systems/redoubt/httpapi"
	"github.com/redoubt-systems/redoubt/storage"
)

// Metadata is a client's registration (RFC 7591), as Matrix's OAuth 2.0
// API restricts it: public clients (no secret), the authorization code
// grant with refresh tokens, redirect URIs that belong to the client's own
// address.
type Metadata struct {
	ClientName              string   `json:"client_name,omitempty"`
	ClientURI               string   `json:"client_uri"`
	LogoURI                 string   `json:"logo_uri,omitempty"`
	PolicyURI               string   `json:"policy_uri,omitempty"`
	TOSURI                  string   `json:"tos_uri,omitempty"`
	RedirectURIs            []string `json:"redirect_uris"`
	ApplicationType         string   `json:"application_type"`
	GrantTypes              []string `json:"grant_types"`
	ResponseTypes           []string `json:"response_types"`
	TokenEndpointAuthMethod string   `json:"token_endpoint_auth_method"`
	Contacts                []string `json:"contacts,omitempty"`
	IDTokenSignedAlg        string   `json:"id_token_signed_response_alg,omitempty"`
}

// registrationError is RFC 7591's error answer.
type registrationError struct {
	Code, Description string
}

func (e *registrationError) Error() string { return e.Code + ": " + e.Description }

func badMetadata(format string) error {
	return &registrationError{"invalid_client_metadata", format}
}

func badRedirect(format string) error {
	return &registrationError{"invalid_redirect_uri", format}
}

// loopback reports whether a host is this machine, where a client may use
// plain HTTP (RFC 8252, and developers' own machines).
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// check validates a registration as Matrix's OAuth 2.0 API asks, filling
// in its defaults.
func (m *Metadata) check() error {
	u, err := url.Parse(m.ClientURI)
	if err != nil || u.Host == "" || u.User != nil || (u.Scheme != "https" && !(u.Scheme == "http" && loopback(u.Hostname()))) {
		return badMetadata("client_uri must be an https URL")
	}
	if m.ApplicationType == "" {
		m.ApplicationType = "web"
	}
	if m.ApplicationType != "web" && m.ApplicationType != "native" {
		return badMetadata("application_type must be web or native")
	}
	if m.TokenEndpointAuthMethod == "" {
		m.TokenEndpointAuthMethod = "none"
	}
	if m.TokenEndpointAuthMethod != "none" {
		return badMetadata("only public clients (token_endpoint_auth_method none) are supported")
	}
	if len(m.GrantTypes) == 0 {
		m.GrantTypes = []string{"authorization_code", "refresh_token"}
	}
	// Grant types not offered here (the device code grant Element X may
	// ask for, for signing in by QR code) are left out of the
	// registration, as RFC 7591 lets a server do, rather than refused.
	m.GrantTypes = slices.DeleteFunc(m.GrantTypes, func(g string) bool { return g != "authorization_code" && g != "refresh_token" })
	if !slices.Contains(m.GrantTypes, "authorization_code") {
		return badMetadata("grant_types must include authorization_code")
	}
	if len(m.ResponseTypes) == 0 {
		m.ResponseTypes = []string{"code"}
	}
	if len(m.ResponseTypes) != 1 || m.ResponseTypes[0] != "code" {
		return badMetadata("response_types must be [code]")
	}
	if m.IDTokenSignedAlg != "" && m.IDTokenSignedAlg != "RS256" {
		return badMetadata("ID tokens are signed with RS256")
	}
	for _, field := range []*string{&m.LogoURI, &m.PolicyURI, &m.TOSURI} {
		if *field != "" && !sameSite(u, *field) {
			*field = "" // as the spec says: ignored, not an error
		}
	}
	if len(m.RedirectURIs) == 0 || len(m.RedirectURIs) > 20 {
		return badRedirect("redirect_uris must list 1 to 20 URIs")
	}
	for _, r := range m.RedirectURIs {
		if err := m.checkRedirect(u, r); err != nil {
			return err
		}
	}
	return nil
}

// sameSite reports whether a URL is on the client's host or below it.
func sameSite(client *url.URL, raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == client.Scheme && (u.Hostname() == client.Hostname() || strings.HasSuffix(u.Hostname(), "."+client.Hostname()))
}

// checkRedirect: a web client's URIs are on its own host (https, or http
// on loopback); a native client's are on loopback over http, or use a
// private scheme that is its host's name reversed (com.example.app:/cb).
func (m *Metadata) checkRedirect(client *url.URL, raw string) error {
	r, err := url.Parse(raw)
	if err != nil || r.Fragment != "" || r.User != nil {
		return badRedirect(raw + " is not a redirect URI")
	}
	switch {
	case r.Scheme == "https" || r.Scheme == "http":
		if r.Scheme == "http" && !loopback(r.Hostname()) {
			return badRedirect(raw + ": http only on loopback")
		}
		if m.ApplicationType == "native" && !loopback(r.Hostname()) {
			return badRedirect(raw + ": a native client's https redirect URIs are not allowed; use loopback or a private scheme")
		}
		if m.ApplicationType == "web" && !sameSite(client, raw) {
			return badRedirect(raw + " is not on the client's host " + client.Host)
		}
	case m.ApplicationType == "native" && strings.Contains(r.Scheme, "."):
		labels := strings.Split(client.Hostname(), ".")
		slices.Reverse(labels)
		if !strings.HasPrefix(r.Scheme, strings.Join(labels, ".")) || r.Host != "" {
			return badRedirect(raw + ": a private scheme must be the client's host reversed, with no host part")
		}
	default:
		return badRedirect(raw + " is not an allowed redirect URI")
	}
	return nil
}

// register adds a client, returning its ID and its metadata with the
// defaults filled in.
func (s *Server) register(ctx context.Context, m Metadata) (string, Metadata, error) {
	if err := m.check(); err != nil {
		return "", m, err
	}
	id := "rdc_" + auth.RandomString(16)
	body, err := json.Marshal(m)
	if err != nil {
		return "", m, err
	}
	return id, m, s.DB.Write(ctx, func(q Store) error { return q.AddOAuthClient(ctx, id, body, s.Now().UnixMilli()) })
}

// client is a registered client, as the op package asks about it.
type client struct {
	id string
	m  Metadata
	s  *Server
}

func (s *Server) client(ctx context.Context, id string) (*client, error) {
	body, err := s.DB.R().OAuthClient(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	if err != nil {
		return nil, err
	}
	c := &client{id: id, s: s}
	return c, json.Unmarshal(body, &c.m)
}

func (c *client) GetID() string                    { return c.id }
func (c *client) RedirectURIs() []string           { return c.m.RedirectURIs }
func (c *client) PostLogoutRedirectURIs() []string { return nil }
func (c *client) ApplicationType() op.ApplicationType {
	if c.m.ApplicationType == "native" {
		return op.ApplicationTypeNative
	}
	return op.ApplicationTypeWeb
}
func (c *client) AuthMethod() oidc.AuthMethod { return oidc.AuthMethodNone }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType {
	return []oidc.GrantType{oidc.GrantTypeCode, oidc.GrantTypeRefreshToken}
}
func (c *client) LoginURL(id string) string            { return c.s.issuer() + "login?id=" + url.QueryEscape(id) }
func (c *client) AccessTokenType() op.AccessTokenType  { return op.AccessTokenTypeBearer }
func (c *client) IDTokenLifetime() time.Duration       { return idTokenLifetime }
func (c *client) IsScopeAllowed(scope string) bool     { return allowedScope(scope) }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return false }
func (c *client) ClockSkew() time.Duration             { return 0 }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}

// DevMode lets a web client on loopback use plain HTTP redirect URIs
// (the op package allows them to native clients only).
func (c *client) DevMode() bool {
	for _, r := range c.m.RedirectURIs {
		if u, err := url.Parse(r); err != nil || u.Scheme != "http" || !loopback(u.Hostname()) {
			return false
		}
	}
	return true
}

// writeRegistrationError answers a refused registration as RFC 7591 does.
func writeRegistrationError(w http.ResponseWriter, err error) {
	var re *registrationError
	code, body := http.StatusInternalServerError, map[string]string{"error": "server_error"}
	if errors.As(err, &re) {
		code, body = http.StatusBadRequest, map[string]string{"error": re.Code, "error_description": re.Description}
	}
	w.Header().Set("Cache-Control", "no-store")
	httpapi.WriteJSON(w, code, body)
}
