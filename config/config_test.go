package config

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestSampleMatchesDefaults(t *testing.T) {
	cfg, err := Load("../config.sample.yaml")
	if err != nil {
		t.Fatal(err)
	}
	def := Default()
	if err := def.Validate(); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, def) {
		t.Fatalf("config.sample.yaml differs from the defaults:\n%+v\n%+v", cfg, def)
	}
}

func TestEmptyFileIsDefaults(t *testing.T) {
	cfg, err := Parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "localhost" || cfg.Listen != "127.0.0.1:8008" || cfg.Database != "./redoubt.db" || !cfg.RateLimits.Enabled {
		t.Fatalf("defaults: %+v", cfg)
	}
}

func TestParse(t *testing.T) {
	cfg, err := Parse([]byte(`
server_name: hs1
listen: 127.0.0.1:9999
database: /tmp/x.db
registration_shared_secret: s3cret
registration: {open: true}
rate_limits: {enabled: false}
auth: {access_token_lifetime: 1d}
limits: {max_request_body: 2MiB}
rooms: {default_version: "12"}
`))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ServerName != "hs1" || cfg.PublicBaseURL != "http://127.0.0.1:9999" || !cfg.Registration.Open ||
		cfg.RateLimits.Enabled || cfg.Auth.AccessTokenLifetime.D() != 24*time.Hour || cfg.Limits.MaxRequestBody != 2<<20 ||
		cfg.Rooms.DefaultVersion != "12" || cfg.RegistrationSharedSecret != "s3cret" {
		t.Fatalf("parsed: %+v", cfg)
	}
}

func TestSecretFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(path, []byte("from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte("registration_shared_secret_file: " + path))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.RegistrationSharedSecret != "from-file" {
		t.Fatalf("secret %q", cfg.RegistrationSharedSecret)
	}
}

// A provider gets its defaults, and its secret from its file.
func TestSSOProvider(t *testing.T) {
	secret := filepath.Join(t.TempDir(), "secret")
	if err := os.WriteFile(secret, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse([]byte("sso: {providers: [{id: corp, issuer: 'https://login.example', client_id: c, client_secret_file: " + secret + "}]}"))
	if err != nil {
		t.Fatal(err)
	}
	p := cfg.SSO.Providers[0]
	want := Provider{ID: "corp", Name: "corp", Issuer: "https://login.example", ClientID: "c", ClientSecret: "s3cret", ClientSecretFile: secret,
		Scopes: []string{"openid", "profile", "email"}, LocalpartClaim: "preferred_username", DisplayNameClaim: "name", CreateAccounts: true}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("provider %+v, want %+v", p, want)
	}
	if !cfg.SSO.PasswordLogin || !cfg.SSO.OAuthAPI {
		t.Fatal("password login and the OAuth 2.0 API are on by default")
	}
}

func TestInvalid(t *testing.T) {
	for _, tc := range []struct{ yaml, key string }{
		{"server_nmae: x", "server_nmae"},
		{"rate_limits: {enabeld: true}", "enabeld"},
		{"server_name: 'bad name'", "server_name"},
		{"listen: nowhere", "listen"},
		{"listen: 127.0.0.1:99999", "listen"},
		{"database: ''", "database"},
		{"public_baseurl: ftp://x", "public_baseurl"},
		{"password: {min_length: -1}", "password.min_length"},
		{"auth: {access_token_lifetime: 10s}", "auth.access_token_lifetime"},
		{"auth: {access_token_lifetime: soon}", "invalid duration"},
		{"rooms: {default_version: '13'}", "rooms.default_version"},
		{"log: {level: loud}", "log.level"},
		{"log: {format: xml}", "log.format"},
		{"limits: {max_request_body: 1KiB}", "limits.max_request_body"},
		{"limits: {max_request_body: lots}", "invalid size"},
		{"limits: {memory: 1MiB}", "limits.memory"},
		{"limits: {memory: 0%}", "invalid percentage"},
		{"limits: {memory: 120%}", "invalid percentage"},
		{"limits: {memory: much%}", "invalid percentage"},
		{"registration: {open: maybe}", "open"},
		{"registration_shared_secret: a\nregistration_shared_secret_file: /x", "registration_shared_secret_file"},
		{"registration_shared_secret_file: /does/not/exist", "registration_shared_secret_file"},
		{"backup: {interval: 1h, recipients: [age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p]}", "backup.interval"},
		{"backup: {destinations: [{url: 's3://b', access_key_file: /dev/null}]}", "backup.destinations[0].name"},
		{"backup: {destinations: [{name: a, url: 'https://b'}]}", "backup.destinations[0].url"},
		{"backup: {destinations: [{name: a, url: 's3://'}]}", "backup.destinations[0].url"},
		{"backup: {destinations: [{name: a, url: 's3://b', endpoint: 'minio:9000'}]}", "backup.destinations[0].endpoint"},
		{"backup: {destinations: [{name: a, url: 's3://b', keep: -1}]}", "backup.destinations[0].keep"},
		{"backup: {destinations: [{name: a, url: 's3://b', access_key_file: /does/not/exist}]}", "backup.destinations[0].access_key_file"},
		{"backup: {destinations: [{name: a, url: 's3://b'}, {name: a, url: 's3://c'}]}", "backup.destinations[1].name"},
		{"backup: {destinations: [{name: a, url: 's3://b', access_key: inline}]}", "access_key"},
		{"backup: {destinations: [{name: a, url: 's3://b', access_key_file: /dev/null}]}", "backup.continuous"},
		{"backup: {max_lag: 10ms}", "backup.max_lag"},
		{"sso: {providers: [{id: 'Bad Id', issuer: 'https://i', client_id: c}]}", "sso.providers[0].id"},
		{"sso: {providers: [{id: a, issuer: 'https://i', client_id: c}, {id: a, issuer: 'https://i', client_id: c}]}", "sso.providers[1].id"},
		{"sso: {providers: [{id: a, issuer: 'ldap://i', client_id: c}]}", "sso.providers[0].issuer"},
		{"sso: {providers: [{id: a, issuer: 'https://i'}]}", "sso.providers[0].client_id"},
		{"sso: {providers: [{id: a, issuer: 'https://i', client_id: c, client_secret: s, client_secret_file: /x}]}", "sso.providers[0].client_secret_file"},
		{"sso: {providers: [{id: a, issuer: 'https://i', client_id: c, scopes: [email]}]}", "sso.providers[0].scopes"},
		{"sso: {providers: [{id: a, issuer: 'https://i', client_id: c, localpart_claim: nickname}]}", "sso.providers[0].localpart_claim"},
		{"sso: {providers: [{id: a, issuer: 'https://i', client_id: c, allow: {claim: groups}}]}", "sso.providers[0].allow"},
		{"sso: {providers: [{id: a, issuer: 'https://i', client_id: c, clientsecret: s}]}", "clientsecret"},
		{"sso: {client_redirects: ['not a url']}", "sso.client_redirects"},
		{"sso: {client_redirects: ['https://user@app.example/']}", "sso.client_redirects"},
		{"calls: {start_calls: anyone}", "calls.start_calls"},
		{"calls: {livekit: {url: 'https://lk.example'}}", "calls.livekit.url"},
		{"calls: {livekit: {url: 'wss://lk.example'}}", "calls.livekit.api_key"},
		{"calls: {livekit: {url: 'wss://lk.example', api_key: k, api_secret: s, api_secret_file: /x}}", "calls.livekit.api_secret_file"},
	} {
		t.Run(tc.key, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.key) {
				t.Fatalf("%q: error %v does not name %q", tc.yaml, err, tc.key)
			}
		})
	}
	// Every problem is reported at once.
	_, err := Parse([]byte("server_name: 'a b'\nlisten: x\nlog: {level: loud}"))
	for _, key := range []string{"server_name", "listen", "log.level"} {
		if err == nil || !strings.Contains(err.Error(), key) {
			t.Fatalf("error %v does not name %s", err, key)
		}
	}
}

// limits.memory is a size or a share of the limit the process runs under.
func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		yaml       string
		under, got int64
	}{
		{"limits: {memory: 64MiB}", 1 << 30, 64 << 20},
		{"limits: {memory: 0}", 1 << 30, 0},
		{"limits: {memory: '80%'}", 1000 << 20, 800 << 20},
		{"limits: {memory: 80%}", 0, 0}, // a share of no limit is none
		{"", 0, 96 << 20},
	} {
		cfg, err := Parse([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := cfg.Limits.Memory.Of(tc.under); got != tc.got {
			t.Errorf("%q under %d: %d, want %d", tc.yaml, tc.under, got, tc.got)
		}
	}
}

// A destination's bucket and prefix come from its URL, its credentials
// from files or else from the environment; without either it is refused.
func TestDestinations(t *testing.T) {
	dir := t.TempDir()
	access, secret := filepath.Join(dir, "access"), filepath.Join(dir, "secret")
	os.WriteFile(access, []byte("AKID\n"), 0o600)
	os.WriteFile(secret, []byte("s3cret\n"), 0o600)
	t.Setenv("AWS_ACCESS_KEY_ID", "")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "")
	if _, err := Parse([]byte("backup: {destinations: [{name: a, url: 's3://b'}]}")); err == nil || !strings.Contains(err.Error(), "no credentials") {
		t.Fatalf("no credentials: %v", err)
	}
	cfg, err := Parse([]byte("backup: {destinations: [{name: eu, url: 's3://bucket/tenants/acme/', endpoint: 'http://127.0.0.1:7070', access_key_file: " +
		access + ", secret_key_file: " + secret + "}, {name: us, url: 's3://other'}]}"))
	if err == nil {
		t.Fatal("the second destination has no credentials")
	}
	t.Setenv("AWS_ACCESS_KEY_ID", "ENVID")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "envsecret")
	cfg, err = Parse([]byte("backup: {continuous: false, destinations: [{name: eu, url: 's3://bucket/tenants/acme/', endpoint: 'http://127.0.0.1:7070', access_key_file: " +
		access + ", secret_key_file: " + secret + "}, {name: us, url: 's3://other', keep: 3}]}"))
	if err != nil {
		t.Fatal(err)
	}
	eu, us := cfg.Backup.Destinations[0], cfg.Backup.Destinations[1]
	if eu.Bucket != "bucket" || eu.Prefix != "tenants/acme/" || eu.AccessKey != "AKID" || eu.SecretKey != "s3cret" || eu.Keep != 7 {
		t.Fatalf("eu: %+v", eu)
	}
	if us.Bucket != "other" || us.Prefix != "" || us.AccessKey != "ENVID" || us.SecretKey != "envsecret" || us.Keep != 3 {
		t.Fatalf("us: %+v", us)
	}
}

func TestUnits(t *testing.T) {
	for in, want := range map[string]time.Duration{"90s": 90 * time.Second, "15m": 15 * time.Minute, "12h": 12 * time.Hour, "30d": 30 * 24 * time.Hour} {
		if got, err := ParseDuration(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "d", "-5s", "1.5d", "3w"} {
		if _, err := ParseDuration(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for in, want := range map[string]int64{"65536": 65536, "64KiB": 64 << 10, "100MiB": 100 << 20, "1GiB": 1 << 30, "10MB": 10e6, "5B": 5} {
		if got, err := ParseSize(in); err != nil || got != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"", "MiB", "-1", "1.5MiB", "9999999999GiB"} {
		if _, err := ParseSize(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

// The advertised base URL follows TLS unless public_baseurl says otherwise.
func TestDefaultBaseURL(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"listen: 127.0.0.1:8008", "http://127.0.0.1:8008"},
		{"listen: 0.0.0.0:8448\ntls: {cert_file: c.pem, key_file: k.pem}", "https://0.0.0.0:8448"},
		{"listen: 0.0.0.0:443\ntls: {acme_domains: [matrix.example.org]}", "https://matrix.example.org"},
		{"listen: 0.0.0.0:8448\ntls: {acme_domains: [matrix.example.org]}", "https://matrix.example.org:8448"},
		{"listen: 127.0.0.1:8008\ntls: {cert_file: c.pem, key_file: k.pem}\npublic_baseurl: https://chat.example.org/", "https://chat.example.org"},
	} {
		cfg, err := Parse([]byte(tc.yaml))
		if err != nil {
			t.Fatalf("%s: %v", tc.yaml, err)
		}
		if cfg.PublicBaseURL != tc.want {
			t.Errorf("%s: base URL %q, want %q", tc.yaml, cfg.PublicBaseURL, tc.want)
		}
	}
}
