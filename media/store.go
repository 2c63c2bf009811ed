// Package media is where media bytes are kept: in the database file, in
// chunks, or with media.path in files of their own; written, read and
// deleted (shredded) here. mediaapi serves them.
package media

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"os"
	"path/filepath"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/storage"
)

// chunkSize is the piece size media bytes are stored and served in: an
// upload or download holds one piece in memory, never the whole file.
const chunkSize = 256 << 10

// Store keeps the instance's media bytes.
type Store struct {
	Cfg *config.Config
	DB  storage.View[Chunks]
	// OnFile, if set, is told of each media file in media.path once it is
	// complete (continuous backup sends it).
	OnFile func(mediaID string)
}

// Chunks is the part of storage.Q the media store uses: media bytes kept
// in the database, in pieces.
type Chunks interface {
	AddMediaChunk(ctx context.Context, mediaID string, seq int, data []byte) error
	DeleteMedia(ctx context.Context, mediaID string) error
	DeleteMediaChunks(ctx context.Context, mediaID string, limit int) (bool, error)
	MediaChunk(ctx context.Context, mediaID string, seq int) ([]byte, error)
}

var _ Chunks = storage.Q{}

// FilePath is where media.path keeps a media ID's bytes.
func (s *Store) FilePath(mediaID string) string { return s.filePath(mediaID) }

// Put writes an upload's bytes, in the database or in media.path, and
// returns their size and unpadded base64 SHA-256.
func (s *Store) Put(ctx context.Context, m storage.Media, body io.Reader) (int64, string, error) {
	h := sha256.New()
	body = io.TeeReader(body, h)
	var size int64
	if m.InDir {
		f, err := s.createFile(m.MediaID)
		if err != nil {
			return 0, "", err
		}
		size, err = io.CopyBuffer(f, body, make([]byte, chunkSize))
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Rename(f.Name(), s.filePath(m.MediaID))
		}
		if err != nil {
			_, _ = shred.File(f.Name())
			return 0, "", err
		}
		if s.OnFile != nil {
			s.OnFile(m.MediaID)
		}
	} else {
		buf := make([]byte, chunkSize)
		for seq := 0; ; seq++ {
			n, err := io.ReadFull(body, buf)
			if n > 0 {
				size += int64(n)
				werr := s.DB.Write(context.WithoutCancel(ctx), func(q Chunks) error {
					return q.AddMediaChunk(ctx, m.MediaID, seq, buf[:n])
				})
				if werr != nil {
					return 0, "", werr
				}
			}
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				break
			}
			if err != nil {
				return 0, "", err
			}
		}
	}
	return size, base64.RawStdEncoding.EncodeToString(h.Sum(nil)), nil
}

// open returns a reader of ready media's bytes.
func (s *Store) Open(ctx context.Context, m storage.Media) (io.ReadCloser, error) {
	if m.InDir {
		return os.Open(s.filePath(m.MediaID))
	}
	return &chunkReader{ctx: ctx, db: s.DB, mediaID: m.MediaID, left: m.Size}, nil
}

// chunkReader reads media's chunks one at a time, each in its own query.
type chunkReader struct {
	ctx     context.Context
	db      storage.View[Chunks]
	mediaID string
	seq     int
	buf     []byte
	left    int64
}

func (c *chunkReader) Read(p []byte) (int, error) {
	if len(c.buf) == 0 {
		if c.left <= 0 {
			return 0, io.EOF
		}
		b, err := c.db.R().MediaChunk(c.ctx, c.mediaID, c.seq)
		if err != nil {
			return 0, err
		}
		c.seq++
		c.buf = b
		c.left -= int64(len(b))
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

func (c *chunkReader) Close() error { return nil }

// filePath is where media.path keeps a media ID's bytes.
func (s *Store) filePath(mediaID string) string { return FilePath(s.Cfg.Media.Path, mediaID) }

// FilePath is where a media directory keeps a media ID's bytes: spread
// over subdirectories so none grows huge.
func FilePath(dir, mediaID string) string { return filepath.Join(dir, mediaID[:2], mediaID) }

// createFile opens a temporary file beside the media's final place.
func (s *Store) createFile(mediaID string) (*os.File, error) {
	dir := filepath.Dir(s.filePath(mediaID))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	return os.CreateTemp(dir, ".upload-*")
}

// RemoveFile shreds a media file: deleted media should not stay readable
// in the file system's free blocks.
func (s *Store) RemoveFile(mediaID string) error {
	_, err := shred.File(s.filePath(mediaID))
	return err
}

// Delete removes media: its bytes in bounded steps (a large file is many
// chunks, and secure_delete overwrites each), then its file, thumbnails
// and entry.
func (s *Store) Delete(ctx context.Context, m storage.Media) error {
	for more := true; more; {
		err := s.DB.Write(ctx, func(q Chunks) error {
			var err error
			more, err = q.DeleteMediaChunks(ctx, m.MediaID, 8)
			return err
		})
		if err != nil {
			return err
		}
	}
	if m.InDir {
		if err := s.RemoveFile(m.MediaID); err != nil {
			return err
		}
	}
	return s.DB.Write(ctx, func(q Chunks) error { return q.DeleteMedia(ctx, m.MediaID) })
}

// OpenReady returns a reader of ready media's bytes, for exports.
func (s *Store) OpenReady(ctx context.Context, m storage.Media) (io.ReadCloser, error) {
	return s.Open(ctx, m)
}
