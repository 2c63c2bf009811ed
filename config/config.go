// Package config holds Redoubt's configuration: embedded defaults, then a
// YAML file, then Validate, which reports every problem with its key path.
// There is no global configuration: a *Config is passed to whatever needs it,
// so tests can run several servers in one process.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/redoubt-systems/redoubt/ratelimit"
)

// Config is the whole configuration of one Redoubt instance.
type Config struct {
	// ServerName is the domain part of every user ID, room alias and (before
	// room version 12) room ID.
	ServerName string `yaml:"server_name"`
	// Listen is the host:port the client API is served on.
	Listen string `yaml:"listen"`
	// PublicBaseURL is what /.well-known/matrix/client advertises.
	PublicBaseURL string `yaml:"public_baseurl"`
	// Database is the path of the instance's one SQLite file.
	Database string `yaml:"database"`
	// RegistrationSharedSecret enables Synapse-compatible shared-secret
	// registration at /_synapse/admin/v1/register when non-empty.
	RegistrationSharedSecret     string `yaml:"registration_shared_secret"`
	RegistrationSharedSecretFile string `yaml:"registration_shared_secret_file"`

	Registration  Registration  `yaml:"registration"`
	Password      Password      `yaml:"password"`
	Auth          Auth          `yaml:"auth"`
	SSO           SSO           `yaml:"sso"`
	Calls         Calls         `yaml:"calls"`
	Rooms         Rooms         `yaml:"rooms"`
	RateLimits    RateLimits    `yaml:"rate_limits"`
	Log           Log           `yaml:"log"`
	Limits        Limits        `yaml:"limits"`
	Presence      Presence      `yaml:"presence"`
	DelayedEvents DelayedEvents `yaml:"delayed_events"`
	Media         Media         `yaml:"media"`
	Retention     Retention     `yaml:"retention"`
	Privacy       Privacy       `yaml:"privacy"`
	ServerNotices ServerNotices `yaml:"server_notices"`
	Backup        Backup        `yaml:"backup"`
	TURN          TURN          `yaml:"turn"`
	UserDirectory UserDirectory `yaml:"user_directory"`
	Push          Push          `yaml:"push"`
	TLS           TLS           `yaml:"tls"`
	// PlainHTTP allows serving plain HTTP on an address other than loopback
	// (behind a reverse proxy that terminates TLS).
	PlainHTTP bool `yaml:"plain_http"`
	// TrustedProxies are the addresses (CIDR) whose X-Forwarded-For header
	// is believed for the client's address.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// ShutdownTimeout bounds a graceful stop.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
	Metrics         Metrics  `yaml:"metrics"`
}

// Metrics is the Prometheus endpoint.
type Metrics struct {
	// Listen, if set, serves /metrics on this host:port (keep it private).
	Listen string `yaml:"listen"`
}

// TLS is the server's certificate: files (reloaded on SIGHUP), or one
// obtained automatically by ACME for the given domains.
type TLS struct {
	CertFile    string   `yaml:"cert_file"`
	KeyFile     string   `yaml:"key_file"`
	ACMEDomains []string `yaml:"acme_domains"`
	ACMEEmail   string   `yaml:"acme_email"`
}

// Enabled reports whether the server serves TLS.
func (t TLS) Enabled() bool { return t.CertFile != "" || len(t.ACMEDomains) > 0 }

// Besides the database file, an instance writes into the database's
// directory: the directories below, and the temporary files its backups,
// exports and restores make there (see backup and export). destroy removes
// all of them.

// defaultBaseURL is the base URL advertised when public_baseurl is not
// set: https with TLS (at the ACME domain, if there is one), else http, at
// the listen address.
func (c *Config) defaultBaseURL() string {
	if !c.TLS.Enabled() {
		return "http://" + c.Listen
	}
	if len(c.TLS.ACMEDomains) == 0 {
		return "https://" + c.Listen
	}
	host := c.TLS.ACMEDomains[0]
	if _, port, err := net.SplitHostPort(c.Listen); err == nil && port != "443" {
		host = net.JoinHostPort(host, port)
	}
	return "https://" + host
}

// DataDir is the directory of the database file.
func (c *Config) DataDir() string { return filepath.Dir(c.Database) }

// ExportDir keeps the exports started through the admin API until they
// are downloaded or expire.
func (c *Config) ExportDir() string { return filepath.Join(c.DataDir(), "exports") }

// ACMECacheDir keeps the account key and certificates ACME obtained.
func (c *Config) ACMECacheDir() string { return filepath.Join(c.DataDir(), "acme") }

// Push controls notifications sent to phones through push gateways: the
// only outbound connections Redoubt makes.
type Push struct {
	// GatewayAllowList holds the push gateway URLs (exact, or a prefix
	// ending in /) pushers may use. Empty: no pushers.
	GatewayAllowList []string `yaml:"gateway_allow_list"`
	// IncludeContent sends the event's type, sender and content to the
	// gateway when the pusher asks for it. Off: event_id_only, always.
	IncludeContent bool `yaml:"include_content"`
	// ThreadSubscriptions turns on MSC4306: clients (Element X) subscribe
	// to threads, and replies in a thread notify only its subscribers.
	// Off by default: clients without it (Element Web) would stop being
	// notified of thread replies.
	ThreadSubscriptions bool `yaml:"thread_subscriptions"`
}

// UserDirectory controls who /user_directory/search finds.
type UserDirectory struct {
	// SearchAllUsers finds every user of the instance (one organisation);
	// off, only users sharing a room with the searcher or in a public room.
	SearchAllUsers bool `yaml:"search_all_users"`
}

// TURN is the TURN service handed to clients for calls: the URIs, and the
// secret shared with the TURN server (coturn's use-auth-secret) that
// time-limited credentials are made with.
type TURN struct {
	URIs         []string `yaml:"uris"`
	SharedSecret string   `yaml:"shared_secret"`
	Lifetime     Duration `yaml:"lifetime"`
}

// Version is the Redoubt release this binary is.
const Version = "0.1.0"

// ServerNotices is the account administrators' notices come from.
type ServerNotices struct {
	Localpart   string `yaml:"localpart"`
	DisplayName string `yaml:"display_name"`
	RoomName    string `yaml:"room_name"`
}

// Retention is how long messages and media are kept. A zero duration is
// "no limit".
type Retention struct {
	// DefaultMaxLifetime is the lifetime of messages in rooms without an
	// m.room.retention policy (off when zero).
	DefaultMaxLifetime Duration `yaml:"default_max_lifetime"`
	// MinLifetime and MaxLifetime bound what m.room.retention may ask for.
	MinLifetime Duration `yaml:"min_lifetime"`
	MaxLifetime Duration `yaml:"max_lifetime"`
	// MediaMaxLifetime is the lifetime of uploaded media (off when zero).
	MediaMaxLifetime Duration `yaml:"media_max_lifetime"`
	// Interval is how often the pruner runs.
	Interval Duration `yaml:"interval"`
}

// Privacy controls the connection records kept of users.
type Privacy struct {
	// RecordIPs keeps each device's last IP address and user agent.
	RecordIPs bool `yaml:"record_ips"`
	// IPRetention is how long a device's connection record is kept.
	IPRetention Duration `yaml:"ip_retention"`
	// PublicProfiles lets anyone read display names and avatars without an
	// access token, as Synapse does by default. Off: only users of the
	// instance may.
	PublicProfiles bool `yaml:"public_profiles"`
	// ExportLifetime is how long an export started through the admin API
	// waits to be downloaded; it is deleted then, or once downloaded.
	ExportLifetime Duration `yaml:"export_lifetime"`
}

// Media controls the media repository.
type Media struct {
	// MaxUploadSize is the largest file accepted.
	MaxUploadSize Size `yaml:"max_upload_size"`
	// Path, if set, is a directory that holds media bytes instead of the
	// database file.
	Path string `yaml:"path"`
	// LegacyUnauthenticated serves the deprecated /_matrix/media/v3/download
	// and /thumbnail endpoints, which need no access token.
	LegacyUnauthenticated bool       `yaml:"legacy_unauthenticated"`
	URLPreview            URLPreview `yaml:"url_preview"`
}

// URLPreview controls /preview_url, which makes the server fetch pages.
type URLPreview struct {
	Enabled bool `yaml:"enabled"`
	// DenyIPRanges are the networks the server never connects to, in CIDR.
	DenyIPRanges []string `yaml:"deny_ip_ranges"`
	// MaxPageSize bounds the bytes read of a page (and of its image).
	MaxPageSize Size     `yaml:"max_page_size"`
	Timeout     Duration `yaml:"timeout"`
}

// DefaultDenyIPRanges are private, loopback, link-local and other
// non-public networks: a preview must not reach into the operator's network.
var DefaultDenyIPRanges = []string{
	"0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
	"192.0.0.0/24", "192.0.2.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
	"203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4", "255.255.255.255/32",
	"::/128", "::1/128", "::ffff:0:0/96", "64:ff9b::/96", "100::/64", "2001:db8::/32", "fc00::/7", "fe80::/10", "ff00::/8",
}

// Presence controls online/offline status sharing.
type Presence struct {
	// Enabled shares presence with users who share a room.
	Enabled bool `yaml:"enabled"`
}

// DelayedEvents bounds the events clients schedule (MSC4140; Element Call
// schedules its call-membership "leave" so that a vanished client drops out
// of the call).
type DelayedEvents struct {
	// MaxDelay is the longest delay accepted; 0 turns delayed events off.
	MaxDelay Duration `yaml:"max_delay"`
	// MaxPerUser is how many events one user may have scheduled at once.
	MaxPerUser int `yaml:"max_per_user"`
}

// Registration controls public self-registration through /register.
type Registration struct {
	// Open allows anyone to register with the m.login.dummy stage. Off by
	// default: a tenant's admin creates its users.
	Open bool `yaml:"open"`
	// RequireToken allows registration with a registration token (the
	// m.login.registration_token stage) that an admin handed out.
	RequireToken bool `yaml:"require_token"`
}

// Password is the password policy.
type Password struct {
	MinLength int `yaml:"min_length"`
}

// Auth controls access tokens.
type Auth struct {
	// AccessTokenLifetime is how long an access token lives when the client
	// asked for a refresh token. Tokens of clients that did not are not expiring.
	AccessTokenLifetime Duration `yaml:"access_token_lifetime"`
}

// Rooms controls room creation.
type Rooms struct {
	DefaultVersion string `yaml:"default_version"`
}

// RateLimits switches request rate limiting and sets its buckets: per IP
// address for login, register, shared_secret_register and
// registration_nonce; per user for send, create_room, media and to_device.
type RateLimits struct {
	Enabled bool                      `yaml:"enabled"`
	Rules   map[string]ratelimit.Rule `yaml:"rules"`
}

// RateLimitBuckets are the buckets rate_limits.rules may set.
var RateLimitBuckets = []string{"login", "register", "shared_secret_register", "registration_nonce", "send", "create_room", "media", "to_device"}

// Log controls the server's log.
type Log struct {
	Level  string `yaml:"level"`
	Format string `yaml:"format"`
	// File, if set, is where the log goes instead of standard error: rotated
	// daily, files older than MaxAge deleted.
	File   string   `yaml:"file"`
	MaxAge Duration `yaml:"max_age"`
}

// Limits bounds what one request may carry.
type Limits struct {
	// MaxRequestBody is the largest JSON request body accepted.
	MaxRequestBody Size `yaml:"max_request_body"`
	// Memory is a soft limit for the server's Go heap (0: none), or a
	// share of the memory limit the process runs under.
	Memory MemoryLimit `yaml:"memory"`
	// MaxConnections caps simultaneous client connections.
	MaxConnections int `yaml:"max_connections"`
}

// Default returns the configuration `redoubt` runs with when given no file.
func Default() *Config {
	return &Config{
		ServerName: "localhost",
		Listen:     "127.0.0.1:8008",
		Database:   "./redoubt.db",
		Password:   Password{MinLength: 8},
		Auth:       Auth{AccessTokenLifetime: Duration(5 * time.Minute)},
		Calls:      Calls{StartCalls: "members"},
		SSO:        SSO{PasswordLogin: true, OAuthAPI: true, ClientRedirects: []string{}, Providers: []Provider{}},
		Rooms:      Rooms{DefaultVersion: "11"},
		RateLimits: RateLimits{Enabled: true, Rules: map[string]ratelimit.Rule{
			"login": {PerSecond: 0.2, Burst: 10}, "register": {PerSecond: 0.05, Burst: 3}, "shared_secret_register": {PerSecond: 0.5, Burst: 20}, "registration_nonce": {PerSecond: 0.5, Burst: 20},
			"send": {PerSecond: 10, Burst: 50}, "create_room": {PerSecond: 0.2, Burst: 10}, "media": {PerSecond: 1, Burst: 20},
			"to_device": {PerSecond: 20, Burst: 100},
		}},
		Log:           Log{Level: "info", Format: "text", MaxAge: Duration(30 * 24 * time.Hour)},
		Limits:        Limits{MaxRequestBody: 1 << 20, Memory: MemoryLimit{Bytes: 96 << 20}, MaxConnections: 10000},
		Registration:  Registration{Open: false},
		Presence:      Presence{Enabled: true},
		DelayedEvents: DelayedEvents{MaxDelay: Duration(24 * time.Hour), MaxPerUser: 100},
		Media: Media{MaxUploadSize: 100 << 20, URLPreview: URLPreview{
			DenyIPRanges: DefaultDenyIPRanges, MaxPageSize: 1 << 20, Timeout: Duration(10 * time.Second)}},
		Retention:       Retention{Interval: Duration(time.Hour)},
		Privacy:         Privacy{RecordIPs: true, IPRetention: Duration(30 * 24 * time.Hour), ExportLifetime: Duration(4 * time.Hour)},
		ServerNotices:   ServerNotices{Localpart: "notices", DisplayName: "Server Notices", RoomName: "Server Notices"},
		Backup:          Backup{Keep: 7, Recipients: []string{}, Destinations: []Destination{}, Continuous: true, MaxLag: Duration(time.Minute), BeforeUpgrade: true},
		TURN:            TURN{URIs: []string{}, Lifetime: Duration(24 * time.Hour)},
		UserDirectory:   UserDirectory{SearchAllUsers: true},
		Push:            Push{GatewayAllowList: []string{}},
		TLS:             TLS{ACMEDomains: []string{}},
		TrustedProxies:  []string{},
		ShutdownTimeout: Duration(10 * time.Second),
	}
}

// Load reads a YAML file over the defaults and validates the result.
func Load(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Parse reads YAML over the defaults and validates the result. Unknown keys
// are errors, so that a misspelt key never silently falls back to a default.
func Parse(data []byte) (*Config, error) {
	cfg := Default()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	// An empty file is an empty document: yaml.v3 reports it as io.EOF.
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("config: %s", nameKeys(data, err.Error()))
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return cfg, nil
}

// nameKeys adds the key path to each "line N:" of a YAML error, since type
// errors name only the line.
func nameKeys(data []byte, msg string) string {
	var root yaml.Node
	if yaml.Unmarshal(data, &root) != nil {
		return msg
	}
	keys := map[int]string{}
	var walk func(n *yaml.Node, prefix string)
	walk = func(n *yaml.Node, prefix string) {
		if n.Kind == yaml.DocumentNode {
			for _, c := range n.Content {
				walk(c, prefix)
			}
			return
		}
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := prefix + k.Value
			keys[v.Line] = path
			walk(v, path+".")
		}
	}
	walk(&root, "")
	return lineRE.ReplaceAllStringFunc(msg, func(m string) string {
		var line int
		fmt.Sscanf(m, "line %d:", &line)
		if k, ok := keys[line]; ok {
			return m + " " + k + ":"
		}
		return m
	})
}

var lineRE = regexp.MustCompile(`line \d+:`)

var localpartRE = regexp.MustCompile(`^[a-z0-9._=/+-]+$`)

var serverNameRE = regexp.MustCompile(`^[A-Za-z0-9.\-]+(:[0-9]{1,5})?$|^\[[0-9A-Fa-f:.]+\](:[0-9]{1,5})?$`)

// Validate checks the whole configuration and reports every problem at once,
// each with its key path. It also resolves *_file secrets.
func (c *Config) Validate() error {
	var problems []string
	bad := func(key, format string, args ...any) {
		problems = append(problems, key+": "+fmt.Sprintf(format, args...))
	}
	if !serverNameRE.MatchString(c.ServerName) {
		bad("server_name", "%q is not a valid server name", c.ServerName)
	}
	if _, port, err := net.SplitHostPort(c.Listen); err != nil {
		bad("listen", "%q is not host:port", c.Listen)
	} else if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		bad("listen", "%q has an invalid port", c.Listen)
	}
	if (c.TLS.CertFile == "") != (c.TLS.KeyFile == "") {
		bad("tls.cert_file", "give both tls.cert_file and tls.key_file, or neither")
	}
	if c.TLS.CertFile != "" && len(c.TLS.ACMEDomains) > 0 {
		bad("tls.acme_domains", "give certificate files or ACME domains, not both")
	}
	if host, _, err := net.SplitHostPort(c.Listen); err == nil && !c.TLS.Enabled() && !c.PlainHTTP {
		if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
			bad("listen", "plain HTTP on %q, which is not a loopback address: configure tls, or set plain_http: true behind a TLS-terminating proxy", c.Listen)
		}
	}
	if c.Metrics.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Metrics.Listen); err != nil {
			bad("metrics.listen", "%q is not host:port", c.Metrics.Listen)
		}
	}
	if c.ShutdownTimeout < Duration(time.Second) {
		bad("shutdown_timeout", "must be at least 1s")
	}
	for _, p := range c.TrustedProxies {
		if _, _, err := net.ParseCIDR(p); err != nil {
			bad("trusted_proxies", "%q is not a CIDR range", p)
		}
	}
	if c.Database == "" {
		bad("database", "must name the SQLite file")
	}
	if c.PublicBaseURL == "" {
		c.PublicBaseURL = c.defaultBaseURL()
	} else if !strings.HasPrefix(c.PublicBaseURL, "http://") && !strings.HasPrefix(c.PublicBaseURL, "https://") {
		bad("public_baseurl", "%q must start with http:// or https://", c.PublicBaseURL)
	}
	c.PublicBaseURL = strings.TrimRight(c.PublicBaseURL, "/")
	secretFromFile(bad, "registration_shared_secret_file", c.RegistrationSharedSecretFile, &c.RegistrationSharedSecret)
	if c.Password.MinLength < 0 || c.Password.MinLength > 1024 {
		bad("password.min_length", "must be between 0 and 1024")
	}
	if c.Auth.AccessTokenLifetime < Duration(time.Minute) {
		bad("auth.access_token_lifetime", "must be at least 1m")
	}
	if !slices.Contains(SupportedRoomVersions, c.Rooms.DefaultVersion) {
		bad("rooms.default_version", "%q is not one of %s", c.Rooms.DefaultVersion, strings.Join(SupportedRoomVersions, ", "))
	}
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		bad("log.level", "%q is not one of debug, info, warn, error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		bad("log.format", "%q is not one of text, json", c.Log.Format)
	}
	if c.Limits.MaxRequestBody < 64<<10 {
		bad("limits.max_request_body", "must be at least 64KiB")
	}
	if c.Limits.MaxConnections < 10 {
		bad("limits.max_connections", "must be at least 10")
	}
	if c.Limits.Memory.Bytes != 0 && c.Limits.Memory.Bytes < 32<<20 {
		bad("limits.memory", "must be 0 (no limit), at least 32MiB, or a percentage")
	}
	for name, rule := range c.RateLimits.Rules {
		if !slices.Contains(RateLimitBuckets, name) {
			bad("rate_limits.rules", "unknown bucket %q (buckets: %s)", name, strings.Join(RateLimitBuckets, ", "))
		} else if rule.PerSecond <= 0 || rule.Burst < 1 {
			bad("rate_limits.rules."+name, "per_second must be positive and burst at least 1")
		}
	}
	r := c.Retention
	if r.MinLifetime != 0 && r.MaxLifetime != 0 && r.MinLifetime > r.MaxLifetime {
		bad("retention.min_lifetime", "is longer than retention.max_lifetime")
	}
	if r.DefaultMaxLifetime != 0 && r.MaxLifetime != 0 && r.DefaultMaxLifetime > r.MaxLifetime {
		bad("retention.default_max_lifetime", "is longer than retention.max_lifetime")
	}
	if r.DefaultMaxLifetime != 0 && r.DefaultMaxLifetime < r.MinLifetime {
		bad("retention.default_max_lifetime", "is shorter than retention.min_lifetime")
	}
	if r.Interval < Duration(time.Second) {
		bad("retention.interval", "must be at least 1s")
	}
	if c.Privacy.IPRetention < Duration(time.Minute) {
		bad("privacy.ip_retention", "must be at least 1m")
	}
	if c.Privacy.ExportLifetime < Duration(time.Second) {
		bad("privacy.export_lifetime", "must be at least 1s")
	}
	if !localpartRE.MatchString(c.ServerNotices.Localpart) {
		bad("server_notices.localpart", "%q is not a valid user localpart", c.ServerNotices.Localpart)
	}
	c.Backup.validate(bad)
	c.SSO.validate(bad)
	c.Calls.validate(bad)
	if c.Log.MaxAge < Duration(24*time.Hour) {
		bad("log.max_age", "must be at least 1d")
	}
	if c.Media.MaxUploadSize < 1<<10 {
		bad("media.max_upload_size", "must be at least 1KiB")
	}
	for _, r := range c.Media.URLPreview.DenyIPRanges {
		if _, _, err := net.ParseCIDR(r); err != nil {
			bad("media.url_preview.deny_ip_ranges", "%q is not a CIDR range", r)
		}
	}
	if c.Media.URLPreview.MaxPageSize < 1<<10 {
		bad("media.url_preview.max_page_size", "must be at least 1KiB")
	}
	if c.Media.URLPreview.Timeout < Duration(time.Second) {
		bad("media.url_preview.timeout", "must be at least 1s")
	}
	if c.DelayedEvents.MaxDelay < 0 {
		bad("delayed_events.max_delay", "must not be negative")
	}
	if c.DelayedEvents.MaxPerUser < 1 {
		bad("delayed_events.max_per_user", "must be at least 1")
	}
	if len(problems) > 0 {
		return fmt.Errorf("invalid configuration:\n  %s", strings.Join(problems, "\n  "))
	}
	return nil
}

// SupportedRoomVersions are the room versions this server creates and
// serves: every stable version, since clients and upgrades may ask for any.
var SupportedRoomVersions = []string{"1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"}

// secretFromFile sets *secret from the file a *_file key names, if any:
// the secret or its file, not both.
func secretFromFile(bad func(key, format string, args ...any), key, file string, secret *string) {
	if file == "" {
		return
	}
	if *secret != "" {
		bad(key, "give either the secret or its file, not both")
	} else if b, err := os.ReadFile(file); err != nil {
		bad(key, "%v", err)
	} else {
		*secret = strings.TrimSpace(string(b))
	}
}
