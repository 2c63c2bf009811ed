package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"time"
)

// SSO is signing in with the organisation's identity providers.
type SSO struct {
	// PasswordLogin offers m.login.password beside the providers. On by
	// default; off, only the providers sign people in (shared-secret
	// registration and admin-issued tokens still work).
	PasswordLogin bool `yaml:"password_login"`
	// OAuthAPI serves Matrix's OAuth 2.0 API (spec v1.15), with Redoubt
	// as its own authorization server: what Element X's sign-in uses. On
	// by default.
	OAuthAPI bool `yaml:"oauth_api"`
	// ClientRedirects are the client URLs a login token is handed to
	// without asking the user first (Element Web's own address, say): the
	// same scheme and host, and a path below the entry's. Any other URL
	// gets the confirmation page the spec asks for.
	ClientRedirects []string `yaml:"client_redirects"`
	// Providers are the OpenID Connect providers people sign in with.
	Providers []Provider `yaml:"providers"`
}

// Provider is one upstream OpenID Connect provider.
type Provider struct {
	// ID names the provider in URLs and in accounts' external IDs; it
	// must not change once people have signed in with it.
	ID string `yaml:"id"`
	// Name is what login pages and clients show ("Sign in with Name").
	Name string `yaml:"name"`
	// Issuer is the provider's issuer URL; its
	// /.well-known/openid-configuration says the rest.
	Issuer           string   `yaml:"issuer"`
	ClientID         string   `yaml:"client_id"`
	ClientSecret     string   `yaml:"client_secret"`
	ClientSecretFile string   `yaml:"client_secret_file"`
	Scopes           []string `yaml:"scopes"`
	// LocalpartClaim is the claim an account's localpart is made from:
	// preferred_username (the default), email (the part before @) or sub.
	LocalpartClaim string `yaml:"localpart_claim"`
	// DisplayNameClaim is the claim a new account's display name comes
	// from ("name" by default; "" for none).
	DisplayNameClaim string `yaml:"display_name_claim"`
	// CreateAccounts lets a first sign-in create its account (on by
	// default). Off, only identities already linked (by an admin, or by
	// LinkExisting) sign in.
	CreateAccounts bool `yaml:"create_accounts"`
	// LinkExisting links a first sign-in to the existing account its
	// localpart names, instead of giving it a new one: for moving password
	// users to the provider, where its usernames are the same people.
	LinkExisting bool `yaml:"link_existing"`
	// Allow, if set, admits only people whose claim has the value (equal
	// to it, or, for a list claim such as groups, among it).
	Allow *ClaimRule `yaml:"allow"`
	// CheckAtRefresh, if set, asks the provider again, at most this often,
	// whether a signed-in person is still there: when their session's
	// tokens are refreshed, Redoubt refreshes the provider's refresh token
	// of their latest sign-in; a refusal (a disabled account, a revoked
	// session) or an allow rule no longer met ends all their sessions.
	// Ask for offline_access in scopes where the provider's refresh tokens
	// otherwise end with its browser session.
	CheckAtRefresh Duration `yaml:"check_at_refresh"`
}

// ClaimRule is a claim that must carry a value.
type ClaimRule struct {
	Claim string `yaml:"claim"`
	Value string `yaml:"value"`
}

var providerIDRE = regexp.MustCompile(`^[a-z0-9_.-]{1,64}$`)

// validate checks the SSO settings, reads the client secrets' files and
// fills in each provider's defaults.
func (s *SSO) validate(bad func(key, format string, args ...any)) {
	for _, p := range s.ClientRedirects {
		if u, err := url.Parse(p); err != nil || u.Scheme == "" || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
			bad("sso.client_redirects", "%q is not a URL of a scheme, a host and a path", p)
		}
	}
	seen := map[string]bool{}
	for i := range s.Providers {
		p := &s.Providers[i]
		key := fmt.Sprintf("sso.providers[%d]", i)
		if !providerIDRE.MatchString(p.ID) {
			bad(key+".id", "%q must be 1-64 of a-z, 0-9, _ . -", p.ID)
		} else if seen[p.ID] {
			bad(key+".id", "%q is used twice", p.ID)
		}
		seen[p.ID] = true
		if p.Name == "" {
			p.Name = p.ID
		}
		if u, err := url.Parse(p.Issuer); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			bad(key+".issuer", "%q is not an http(s) URL", p.Issuer)
		}
		if p.ClientID == "" {
			bad(key+".client_id", "is required")
		}
		secretFromFile(bad, key+".client_secret_file", p.ClientSecretFile, &p.ClientSecret)
		if len(p.Scopes) == 0 {
			p.Scopes = []string{"openid", "profile", "email"}
		} else if !slices.Contains(p.Scopes, "openid") {
			bad(key+".scopes", "must include openid")
		}
		switch p.LocalpartClaim {
		case "":
			p.LocalpartClaim = "preferred_username"
		case "preferred_username", "email", "sub":
		default:
			bad(key+".localpart_claim", "%q is not one of preferred_username, email, sub", p.LocalpartClaim)
		}
		if p.CheckAtRefresh != 0 && p.CheckAtRefresh < Duration(time.Minute) {
			bad(key+".check_at_refresh", "must be 0 (off) or at least 1m")
		}
		if p.Allow != nil && (p.Allow.Claim == "" || p.Allow.Value == "") {
			bad(key+".allow", "needs both claim and value")
		}
	}
}

// UnmarshalYAML gives a provider its defaults before the file's keys.
func (p *Provider) UnmarshalYAML(unmarshal func(any) error) error {
	type plain Provider
	v := plain{CreateAccounts: true, DisplayNameClaim: "name"}
	if err := unmarshal(&v); err != nil {
		return err
	}
	*p = Provider(v)
	return nil
}
