// Package objectstore reads and writes the objects of one S3-compatible
// destination, below its prefix: what off-site backups need and no more.
// Keys given to and returned by a Store are relative to the prefix.
package objectstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/redoubt-systems/redoubt/config"
)

// Store is one destination.
type Store struct {
	Name           string
	client         *minio.Client
	closeIdle      func() // the transport's CloseIdleConnections
	bucket, prefix string
}

// Object is a stored object.
type Object struct {
	Key  string
	Size int64
}

// Open returns the Store of a validated destination. It makes no request.
func Open(d config.Destination) (*Store, error) {
	endpoint, secure := "s3.amazonaws.com", true
	if d.Endpoint != "" {
		u, err := url.Parse(d.Endpoint)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("destination %s: endpoint %q is not a URL", d.Name, d.Endpoint)
		}
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", d.Name, err)
	}
	c, err := minio.New(endpoint, &minio.Options{
		Transport: transport,
		Creds:     credentials.NewStaticV4(d.AccessKey, d.SecretKey, ""),
		Secure:    secure,
		Region:    d.Region,
		// Path-style works with every S3 implementation; virtual hosts need DNS.
		BucketLookup: minio.BucketLookupPath,
		// The callers retry with their own backoff, and go on without a
		// destination that stays down.
		MaxRetries: 1,
	})
	if err != nil {
		return nil, fmt.Errorf("destination %s: %w", d.Name, err)
	}
	return &Store{Name: d.Name, client: c, closeIdle: transport.CloseIdleConnections, bucket: d.Bucket, prefix: d.Prefix}, nil
}

// CloseIdle closes the store's idle connections, so that a user of it that
// stops leaves none open (the next request opens one again).
func (s *Store) CloseIdle() { s.closeIdle() }

// OpenAll opens every configured destination.
func OpenAll(ds []config.Destination) ([]*Store, error) {
	var out []*Store
	for _, d := range ds {
		s, err := Open(d)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

// String names the destination and where it keeps objects.
func (s *Store) String() string { return fmt.Sprintf("%s (s3://%s/%s)", s.Name, s.bucket, s.prefix) }

// Put stores body under key. Bodies are held in memory (backup parts are a
// few MiB), so a retry sends the same bytes again.
func (s *Store) Put(ctx context.Context, key string, body []byte) error {
	_, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, bytes.NewReader(body), int64(len(body)),
		minio.PutObjectOptions{ContentType: "application/octet-stream", DisableMultipart: true})
	if err != nil {
		return fmt.Errorf("%s: put %s: %w", s.Name, key, err)
	}
	return nil
}

// PutStream stores what r yields under key, in parts of 8 MiB (one held in
// memory at a time): for objects too large to hold whole.
func (s *Store) PutStream(ctx context.Context, key string, r io.Reader) error {
	_, err := s.client.PutObject(ctx, s.bucket, s.prefix+key, r, -1,
		minio.PutObjectOptions{ContentType: "application/octet-stream", PartSize: 8 << 20})
	if err != nil {
		return fmt.Errorf("%s: put %s: %w", s.Name, key, err)
	}
	return nil
}

// Copy copies the object under from to to, inside the store: no bytes
// pass through this process.
func (s *Store) Copy(ctx context.Context, from, to string) error {
	_, err := s.client.CopyObject(ctx, minio.CopyDestOptions{Bucket: s.bucket, Object: s.prefix + to},
		minio.CopySrcOptions{Bucket: s.bucket, Object: s.prefix + from})
	if err != nil {
		return fmt.Errorf("%s: copy %s to %s: %w", s.Name, from, to, err)
	}
	return nil
}

// Open reads the object under key as a stream.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: get %s: %w", s.Name, key, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, fmt.Errorf("%s: %s: %w", s.Name, key, ErrNotFound)
		}
		return nil, fmt.Errorf("%s: get %s: %w", s.Name, key, err)
	}
	return obj, nil
}

// ErrNotFound is returned by Get for a key the store does not hold.
var ErrNotFound = errors.New("objectstore: no such object")

// Get reads the object under key, at most limit bytes of it.
func (s *Store) Get(ctx context.Context, key string, limit int64) ([]byte, error) {
	obj, err := s.client.GetObject(ctx, s.bucket, s.prefix+key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("%s: get %s: %w", s.Name, key, err)
	}
	defer obj.Close()
	b, err := io.ReadAll(io.LimitReader(obj, limit+1))
	if err != nil {
		if minio.ToErrorResponse(err).Code == "NoSuchKey" {
			return nil, fmt.Errorf("%s: %s: %w", s.Name, key, ErrNotFound)
		}
		return nil, fmt.Errorf("%s: get %s: %w", s.Name, key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: %s is larger than %d bytes", s.Name, key, limit)
	}
	return b, nil
}

// List returns the objects whose keys start with prefix, in key order.
func (s *Store) List(ctx context.Context, prefix string) ([]Object, error) {
	var out []Object
	for o := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: s.prefix + prefix, Recursive: true}) {
		if o.Err != nil {
			return out, fmt.Errorf("%s: list: %w", s.Name, o.Err)
		}
		out = append(out, Object{Key: strings.TrimPrefix(o.Key, s.prefix), Size: o.Size})
	}
	return out, nil
}

// Delete removes the objects under keys; deleting a missing key succeeds.
func (s *Store) Delete(ctx context.Context, keys ...string) error {
	for _, k := range keys {
		if err := s.client.RemoveObject(ctx, s.bucket, s.prefix+k, minio.RemoveObjectOptions{}); err != nil {
			return fmt.Errorf("%s: delete %s: %w", s.Name, k, err)
		}
	}
	return nil
}
