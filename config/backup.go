package config

import (
	"fmt"
	"os"
	"strings"
	"time"

	"filippo.io/age"
)

// Backup is where and how often serve writes encrypted backups.
type Backup struct {
	// Recipients are age public keys ("age1..."): backups are encrypted to
	// each, and only their private keys can restore them.
	Recipients []string `yaml:"recipients"`
	// Interval between scheduled backups (0: none; redoubt backup still works).
	Interval Duration `yaml:"interval"`
	// Dir keeps scheduled backups; Keep is how many of them.
	Dir  string `yaml:"dir"`
	Keep int    `yaml:"keep"`
	// Destinations are object stores every backup also goes to, each
	// keeping its own number of them.
	Destinations []Destination `yaml:"destinations"`
	// Continuous ships the database's changes to the destinations within
	// seconds of commit, between full copies (on by default when there are
	// destinations and recipients).
	Continuous bool `yaml:"continuous"`
	// MaxLag is how far a destination may fall behind before an error is
	// logged.
	MaxLag Duration `yaml:"max_lag"`
	// BeforeUpgrade sends a snapshot to every destination before a newer
	// binary migrates the schema; start fails if none takes it.
	BeforeUpgrade bool `yaml:"before_upgrade"`
}

// Destination finds a configured destination by its name or its URL; nil
// if none has it.
func (b *Backup) Destination(nameOrURL string) *Destination {
	for i, d := range b.Destinations {
		if d.Name == nameOrURL || strings.TrimRight(d.URL, "/") == strings.TrimRight(nameOrURL, "/") {
			return &b.Destinations[i]
		}
	}
	return nil
}

// Destination is an S3-compatible object store backups are sent to.
type Destination struct {
	// Name identifies it in reports, metrics and --from.
	Name string `yaml:"name"`
	// URL is s3://bucket/prefix: everything goes below the prefix.
	URL string `yaml:"url"`
	// Endpoint is the store's address (https://host[:port], or http:// for
	// a store on loopback); empty means AWS S3 in Region.
	Endpoint string `yaml:"endpoint"`
	Region   string `yaml:"region"`
	// AccessKeyFile and SecretKeyFile hold the credentials; without them
	// they come from AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY. Never
	// inline in this file.
	AccessKeyFile string `yaml:"access_key_file"`
	SecretKeyFile string `yaml:"secret_key_file"`
	// Keep is how many snapshots stay there (default 7); MaxAge, if set,
	// also removes those older than it (the newest one always stays).
	Keep   int      `yaml:"keep"`
	MaxAge Duration `yaml:"max_age"`

	// Resolved by Validate.
	Bucket, Prefix       string `yaml:"-"`
	AccessKey, SecretKey string `yaml:"-"`
}

// validate checks the backup settings and resolves the destinations'
// bucket, prefix and credentials.
func (b *Backup) validate(bad func(key, format string, args ...any)) {
	for _, r := range b.Recipients {
		if _, err := age.ParseX25519Recipient(r); err != nil {
			bad("backup.recipients", "%q is not an age public key (age1...)", r)
		}
	}
	if b.Interval != 0 {
		if b.Interval < Duration(time.Minute) {
			bad("backup.interval", "must be 0 (off) or at least 1m")
		}
		if (b.Dir == "" && len(b.Destinations) == 0) || len(b.Recipients) == 0 {
			bad("backup.interval", "scheduled backups need backup.recipients and backup.dir or backup.destinations")
		}
	}
	names := map[string]bool{}
	for i := range b.Destinations {
		d := &b.Destinations[i]
		key := fmt.Sprintf("backup.destinations[%d]", i)
		if d.Name == "" || names[d.Name] {
			bad(key+".name", "each destination needs a name of its own")
		}
		names[d.Name] = true
		bucket, prefix, ok := strings.Cut(strings.TrimPrefix(d.URL, "s3://"), "/")
		if !strings.HasPrefix(d.URL, "s3://") || bucket == "" {
			bad(key+".url", "%q is not s3://bucket/prefix", d.URL)
		}
		d.Bucket, d.Prefix = bucket, strings.Trim(prefix, "/")
		if ok && d.Prefix != "" {
			d.Prefix += "/"
		}
		if d.Endpoint != "" && !strings.HasPrefix(d.Endpoint, "https://") && !strings.HasPrefix(d.Endpoint, "http://") {
			bad(key+".endpoint", "%q must start with https:// or http://", d.Endpoint)
		}
		if d.Keep == 0 {
			d.Keep = 7
		}
		if d.Keep < 1 {
			bad(key+".keep", "must be at least 1")
		}
		d.AccessKey, d.SecretKey = os.Getenv("AWS_ACCESS_KEY_ID"), os.Getenv("AWS_SECRET_ACCESS_KEY")
		for _, f := range []struct {
			name, path string
			to         *string
		}{{"access_key_file", d.AccessKeyFile, &d.AccessKey}, {"secret_key_file", d.SecretKeyFile, &d.SecretKey}} {
			if f.path == "" {
				continue
			}
			b, err := os.ReadFile(f.path)
			if err != nil {
				bad(key+"."+f.name, "%v", err)
			}
			*f.to = strings.TrimSpace(string(b))
		}
		if d.AccessKey == "" || d.SecretKey == "" {
			bad(key, "no credentials: set access_key_file and secret_key_file, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY")
		}
	}
	if b.Keep < 1 {
		bad("backup.keep", "must be at least 1")
	}
	if b.Continuous && len(b.Destinations) > 0 && len(b.Recipients) == 0 {
		bad("backup.continuous", "needs backup.recipients to encrypt to (or continuous: false)")
	}
	if b.MaxLag == 0 {
		b.MaxLag = Duration(time.Minute)
	}
	if b.MaxLag < Duration(time.Second) {
		bad("backup.max_lag", "must be at least 1s")
	}
}
