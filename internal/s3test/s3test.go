// Package s3test runs a real S3 store for tests: versitygw (an S3 gateway
// over a local directory) on a loopback port. Install it with
//
//	go install github.com/versity/versitygw/cmd/versitygw@v1.8.0
//
// Tests that need it skip without it, unless REDOUBT_REQUIRE_S3 is set (CI
// sets it, and installs it).
package s3test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/redoubt-systems/redoubt/config"
)

const access, secret = "redoubt-test", "redoubt-test-secret"

// Store is a running S3 store.
type Store struct {
	Addr string // host:port
	Dir  string // where versitygw keeps buckets, a directory each, objects as files
	t    testing.TB
	bin  string
	cmd  *exec.Cmd
}

// binary finds versitygw: $REDOUBT_VERSITYGW, the PATH, then $GOBIN or ~/go/bin.
func binary(t testing.TB) string {
	if p := os.Getenv("REDOUBT_VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	home, _ := os.UserHomeDir()
	for _, dir := range []string{os.Getenv("GOBIN"), filepath.Join(home, "go", "bin")} {
		if p := filepath.Join(dir, "versitygw"); dir != "" {
			if _, err := os.Stat(p); err == nil {
				return p
			}
		}
	}
	if os.Getenv("REDOUBT_REQUIRE_S3") != "" {
		t.Fatal("versitygw not found, and REDOUBT_REQUIRE_S3 is set")
	}
	t.Skip("versitygw not found (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)")
	return ""
}

// Start runs a store with the given buckets until the test ends.
func Start(t testing.TB, buckets ...string) *Store {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &Store{Addr: addr, Dir: t.TempDir(), t: t, bin: binary(t)}
	if err := os.Mkdir(filepath.Join(s.Dir, "meta"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(s.Dir, "data"), 0o700); err != nil {
		t.Fatal(err)
	}
	s.Start()
	t.Cleanup(s.Stop)
	c, err := minio.New(addr, &minio.Options{Creds: credentials.NewStaticV4(access, secret, ""), BucketLookup: minio.BucketLookupPath})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range buckets {
		if err := c.MakeBucket(context.Background(), b, minio.MakeBucketOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

// Start starts the store again after Stop, on the same address and data.
func (s *Store) Start() {
	s.t.Helper()
	s.cmd = exec.Command(s.bin, "--access", access, "--secret", secret, "--port", s.Addr,
		"posix", "--sidecar", filepath.Join(s.Dir, "meta"), filepath.Join(s.Dir, "data"))
	// Its banner and request log go to a file beside the data, not the test's output.
	log, err := os.OpenFile(filepath.Join(s.Dir, "versitygw.log"), os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		s.t.Fatal(err)
	}
	defer log.Close()
	s.cmd.Stdout, s.cmd.Stderr = log, log
	if err := s.cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("tcp", s.Addr); err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("versitygw did not listen on %s", s.Addr)
		}
	}
}

// Stop stops the store: requests to it fail until Start.
func (s *Store) Stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}

// Destination is a destination in this store, as Validate resolves it.
func (s *Store) Destination(name, bucket, prefix string) config.Destination {
	accessFile, secretFile := s.Credentials(s.t)
	d := config.Destination{Name: name, URL: fmt.Sprintf("s3://%s/%s", bucket, prefix), Endpoint: "http://" + s.Addr,
		Region: "us-east-1", Keep: 7, AccessKeyFile: accessFile, SecretKeyFile: secretFile,
		Bucket: bucket, AccessKey: access, SecretKey: secret}
	if prefix != "" {
		d.Prefix = prefix + "/"
	}
	return d
}

// Credentials writes the store's keys into files, for a configuration's
// access_key_file and secret_key_file.
func (s *Store) Credentials(t testing.TB) (accessFile, secretFile string) {
	dir := t.TempDir()
	accessFile, secretFile = filepath.Join(dir, "access"), filepath.Join(dir, "secret")
	if err := os.WriteFile(accessFile, []byte(access), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(secretFile, []byte(secret), 0o600); err != nil {
		t.Fatal(err)
	}
	return accessFile, secretFile
}

// Object is the file holding an object.
func (s *Store) Object(bucket, key string) string {
	return filepath.Join(s.Dir, "data", bucket, filepath.FromSlash(key))
}
