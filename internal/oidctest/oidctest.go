// Package oidctest runs a real OpenID provider on loopback for tests:
// zitadel/oidc's certified op package with its example storage and login
// page, with users and clients the test sets.
package oidctest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/example/server/exampleop"
	"github.com/zitadel/oidc/v3/example/server/storage"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
	"golang.org/x/text/language"
)

// Provider is a running OpenID provider.
type Provider struct {
	// URL is its issuer.
	URL     string
	Storage *storage.Storage
	users   *users
	extra   map[string]map[string]any
	tamper  map[string]func(map[string]any)
	globs   map[string][]string
	mu      sync.Mutex
}

// Client is a relying party the provider knows.
type Client struct {
	ID, Secret string
	// RedirectURIs may be globs (http://127.0.0.1:*/callback).
	RedirectURIs []string
}

// Start runs a provider that knows the clients given; add users with
// AddUser.
func Start(t testing.TB, clients ...Client) *Provider {
	t.Helper()
	p := &Provider{users: &users{byID: map[string]*storage.User{}}, extra: map[string]map[string]any{}, tamper: map[string]func(map[string]any){}, globs: map[string][]string{}}
	registered := map[string]*storage.Client{}
	for _, c := range clients {
		registered[c.ID] = storage.WebClient(c.ID, c.Secret, c.RedirectURIs...)
		p.globs[c.ID] = c.RedirectURIs
	}
	p.Storage = storage.NewStorageWithClients(p.users, registered)
	srv := httptest.NewUnstartedServer(nil)
	p.URL = "http://" + srv.Listener.Addr().String()
	srv.Config.Handler = p.tampering(exampleop.SetupServer(p.URL, claimsStorage{p.Storage, p}, nil, false))
	srv.Start()
	t.Cleanup(srv.Close)
	return p
}

// User is someone with an account at the provider.
type User struct {
	ID, Username, Password string
	Name, Email            string
	// Claims are added to the ID token (groups, sid...).
	Claims map[string]any
	// IDToken, if set, changes the claims of the user's ID tokens as the
	// provider sends them, signed again with its key: a token for another
	// client, expired, or of another sign-in.
	IDToken func(claims map[string]any)
}

// AddUser adds (or replaces) a user.
func (p *Provider) AddUser(u User) {
	first, last, _ := strings.Cut(u.Name, " ")
	p.users.set(&storage.User{ID: u.ID, Username: u.Username, Password: u.Password, FirstName: first, LastName: last,
		Email: u.Email, EmailVerified: true, PreferredLanguage: language.English})
	p.mu.Lock()
	p.extra[u.ID] = u.Claims
	p.tamper[u.ID] = u.IDToken
	p.mu.Unlock()
}

// RemoveUser deletes a user: they can no longer sign in.
func (p *Provider) RemoveUser(id string) { p.users.remove(id) }

// DisableUser removes a user and revokes their tokens, as a provider does
// for someone who left: their refresh tokens stop working.
func (p *Provider) DisableUser(id string) {
	p.RemoveUser(id)
	for client := range p.globs {
		_ = p.Storage.TerminateSession(context.Background(), id, client)
	}
}

// claimsStorage adds each user's extra claims to their ID tokens, and
// redirect URI globs to clients.
type claimsStorage struct {
	*storage.Storage
	p *Provider
}

// GetClientByClientID gives clients their redirect URIs as globs (the
// example storage's own clients cannot have them).
func (s claimsStorage) GetClientByClientID(ctx context.Context, clientID string) (op.Client, error) {
	c, err := s.Storage.GetClientByClientID(ctx, clientID)
	if err != nil {
		return nil, err
	}
	return globClient{c, s.p.globs[clientID]}, nil
}

type globClient struct {
	op.Client
	globs []string
}

func (c globClient) RedirectURIGlobs() []string           { return c.globs }
func (c globClient) PostLogoutRedirectURIGlobs() []string { return nil }

// SetUserinfoFromRequest fills an ID token's claims: the user's extra
// claims are added last, so a test can also overwrite standard ones (aud,
// exp, nonce) to make a token the relying party must refuse.
func (s claimsStorage) SetUserinfoFromRequest(ctx context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	if err := s.Storage.SetUserinfoFromRequest(ctx, info, req, scopes); err != nil {
		return err
	}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	for k, v := range s.p.extra[req.GetSubject()] {
		info.AppendClaims(k, v)
	}
	return nil
}

// Browser is a browser: its cookies, kept between requests.
type Browser struct{ jar http.CookieJar }

// NewBrowser is a browser with no cookies.
func NewBrowser() *Browser {
	jar, _ := cookiejar.New(nil)
	return &Browser{jar}
}

// Get is a request of the browser's that follows no redirect.
func (b *Browser) Get(t testing.TB, u string) *http.Response {
	t.Helper()
	return b.Do(t, "GET", u, nil)
}

// Do is a request of the browser's (a form, if form is not nil) that
// follows no redirect; its body is read and closed.
func (b *Browser) Do(t testing.TB, method, u string, form url.Values) *http.Response {
	t.Helper()
	c := &http.Client{Jar: b.jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var res *http.Response
	var err error
	if form != nil {
		res, err = c.PostForm(u, form)
	} else {
		req, _ := http.NewRequest(method, u, nil)
		res, err = c.Do(req)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	res.Body = io.NopCloser(bytes.NewReader(body))
	return res
}

// SignIn follows a browser's way from start (a URL of the relying
// party's that sends it to the provider) through the provider's login
// page, signing in as username, and into the relying party's callback;
// it returns the callback's answer, not followed further. b is the
// browser (nil: a new one).
func (p *Provider) SignIn(t testing.TB, b *Browser, start, username, password string) *http.Response {
	t.Helper()
	return p.signIn(t, b, start, username, password, true)
}

// Authorize is SignIn up to the provider's redirect back: it returns the
// callback URL, not visited.
func (p *Provider) Authorize(t testing.TB, b *Browser, start, username, password string) *url.URL {
	t.Helper()
	res := p.signIn(t, b, start, username, password, false)
	res.Body.Close()
	u, err := url.Parse(res.Header.Get("Location"))
	if res.StatusCode != http.StatusFound || err != nil {
		t.Fatalf("the provider answered %d, to %q", res.StatusCode, res.Header.Get("Location"))
	}
	return u
}

func (p *Provider) signIn(t testing.TB, b *Browser, start, username, password string, intoCallback bool) *http.Response {
	t.Helper()
	if b == nil {
		b = NewBrowser()
	}
	c := &http.Client{Jar: b.jar, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		atProvider := strings.HasPrefix(req.URL.String(), p.URL)
		fromProvider := strings.HasPrefix(via[len(via)-1].URL.String(), p.URL)
		if atProvider || (fromProvider && intoCallback) {
			return nil
		}
		return http.ErrUseLastResponse
	}}
	res, err := c.Get(start)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK || !strings.HasPrefix(res.Request.URL.String(), p.URL+"/login/username") {
		// Not at the login page: the relying party's own answer.
		return res
	}
	res.Body.Close()
	id := res.Request.URL.Query().Get("authRequestID")
	res, err = c.PostForm(p.URL+"/login/username", url.Values{"id": {id}, "username": {username}, "password": {password}})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// tampering changes the ID tokens of users with an IDToken function on
// their way out of the token endpoint.
func (p *Provider) tampering(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasSuffix(r.URL.Path, "/token") {
			next.ServeHTTP(w, r)
			return
		}
		rec := httptest.NewRecorder()
		next.ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		var res map[string]any
		if json.Unmarshal(body, &res) == nil {
			if raw, ok := res["id_token"].(string); ok {
				if changed := p.retamper(raw); changed != "" {
					res["id_token"] = changed
					body, _ = json.Marshal(res)
				}
			}
		}
		for k, v := range rec.Header() {
			w.Header()[k] = v
		}
		w.Header().Del("Content-Length")
		w.WriteHeader(rec.Code)
		w.Write(body)
	})
}

// retamper returns an ID token changed as its user's IDToken says, or "".
func (p *Provider) retamper(raw string) string {
	jws, err := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.RS256})
	if err != nil {
		return ""
	}
	var claims map[string]any
	if json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims) != nil {
		return ""
	}
	sub, _ := claims["sub"].(string)
	p.mu.Lock()
	change := p.tamper[sub]
	p.mu.Unlock()
	if change == nil {
		return ""
	}
	change(claims)
	signer, err := p.signer("JWT")
	if err != nil {
		return ""
	}
	payload, _ := json.Marshal(claims)
	signed, err := signer.Sign(payload)
	if err != nil {
		return ""
	}
	out, _ := signed.CompactSerialize()
	return out
}

func (p *Provider) signer(typ string) (jose.Signer, error) {
	key, err := p.Storage.SigningKey(context.Background())
	if err != nil {
		return nil, err
	}
	return jose.NewSigner(jose.SigningKey{Algorithm: key.SignatureAlgorithm(), Key: key.Key()},
		(&jose.SignerOptions{}).WithType(jose.ContentType(typ)).WithHeader("kid", key.ID()))
}

// LogoutToken is a back-channel logout token from the provider, for a
// client, about a subject and/or a session.
func (p *Provider) LogoutToken(t testing.TB, clientID, sub, sid string) string {
	t.Helper()
	signer, err := p.signer("logout+jwt")
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]any{"iss": p.URL, "aud": clientID, "iat": time.Now().Unix(), "exp": time.Now().Add(2 * time.Minute).Unix(),
		"jti": rand.Text(), "events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}
	if sub != "" {
		claims["sub"] = sub
	}
	if sid != "" {
		claims["sid"] = sid
	}
	return sign(t, signer, claims)
}

func sign(t testing.TB, signer jose.Signer, claims map[string]any) string {
	t.Helper()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := signer.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	s, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type users struct {
	mu   sync.Mutex
	byID map[string]*storage.User
}

func (u *users) set(user *storage.User) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.byID[user.ID] = user
}

func (u *users) remove(id string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.byID, id)
}

func (u *users) GetUserByID(id string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.byID[id]
}

func (u *users) GetUserByUsername(name string) *storage.User {
	u.mu.Lock()
	defer u.mu.Unlock()
	for _, user := range u.byID {
		if user.Username == name {
			return user
		}
	}
	return nil
}

func (u *users) ExampleClientID() string { return storage.ServiceUserID }
