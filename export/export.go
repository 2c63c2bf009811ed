// Package export writes an instance's data (or one user's) as a documented
// archive: JSON Lines files and media files in a zstd-compressed tar. The
// format is docs/export-format.md. Each JSON Lines file is spooled to disk
// before it goes into the archive (a tar entry needs its size first), so
// memory stays flat whatever the instance's size.
package export

import (
	"archive/tar"
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/media"
	"github.com/redoubt-systems/redoubt/storage"
)

// Version is the export format's version.
const Version = 1

// Options select what an export holds.
type Options struct {
	// UserID, if set, limits the export to what concerns one user.
	UserID string
	// IncludeSecrets adds password hashes and access token hashes.
	IncludeSecrets bool
}

// Manifest is the archive's last entry.
type Manifest struct {
	Format         string           `json:"format"`
	Version        int              `json:"version"`
	ServerName     string           `json:"server_name"`
	CreatedTS      int64            `json:"created_ts"`
	Scope          string           `json:"scope"`
	UserID         string           `json:"user_id,omitempty"`
	IncludeSecrets bool             `json:"include_secrets"`
	Counts         map[string]int64 `json:"counts"`
}

// Write writes the export to w. spoolDir holds its temporary files (they
// are plaintext: keep them on the instance's own disk); they are shredded.
func Write(ctx context.Context, db *storage.DB, media *media.Store, serverName string, opts Options, spoolDir string, w io.Writer, now time.Time) (Manifest, error) {
	m := Manifest{Format: "redoubt-export", Version: Version, ServerName: serverName, CreatedTS: now.UnixMilli(),
		Scope: "instance", UserID: opts.UserID, IncludeSecrets: opts.IncludeSecrets, Counts: map[string]int64{}}
	if opts.UserID != "" {
		m.Scope = "user"
	}
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return m, err
	}
	tw := tar.NewWriter(zw)
	var mediaRows []storage.Media
	// One read transaction: every file describes the same moment.
	err = db.Read(ctx, func(q storage.Q) error {
		for _, set := range storage.ExportSets {
			if set.Secret && !opts.IncludeSecrets {
				continue
			}
			n, err := spool(ctx, q, set, opts.UserID, spoolDir, tw, now, func(row map[string]any) {
				if set.Name == "media" {
					mediaRows = append(mediaRows, storage.Media{MediaID: row["media_id"].(string), Size: row["size"].(int64),
						InDir: row["in_dir"] == int64(1)})
					delete(row, "in_dir")
					row["file"] = "media/" + row["media_id"].(string)
				}
			})
			if err != nil {
				return err
			}
			m.Counts[set.Name] = n
		}
		return nil
	})
	if err != nil {
		return m, err
	}
	// Media bytes, streamed chunk by chunk. (Media metadata lists at most a
	// few hundred bytes per file, so the list itself stays small.)
	for _, md := range mediaRows {
		r, err := media.OpenReady(ctx, md)
		if err != nil {
			return m, err
		}
		if err := tw.WriteHeader(&tar.Header{Name: "media/" + md.MediaID, Mode: 0o600, Size: md.Size, ModTime: now}); err != nil {
			r.Close()
			return m, err
		}
		_, err = io.Copy(tw, r)
		r.Close()
		if err != nil {
			return m, fmt.Errorf("export: media %s: %w", md.MediaID, err)
		}
	}
	manifest, _ := json.MarshalIndent(m, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o600, Size: int64(len(manifest)), ModTime: now}); err != nil {
		return m, err
	}
	if _, err := tw.Write(manifest); err != nil {
		return m, err
	}
	if err := tw.Close(); err != nil {
		return m, err
	}
	return m, zw.Close()
}

// TempFiles is the name (a glob pattern) of the files an export spools
// into its directory while it runs; destroy removes any a crash left.
const TempFiles = ".export-*"

// spool writes one set as a JSON Lines file to disk, then into the archive.
func spool(ctx context.Context, q storage.Q, set storage.ExportSet, userID, dir string, tw *tar.Writer, now time.Time, edit func(map[string]any)) (int64, error) {
	f, err := os.CreateTemp(dir, ".export-"+set.Name+"-*.jsonl")
	if err != nil {
		return 0, err
	}
	defer shred.File(f.Name())
	defer f.Close()
	bw := bufio.NewWriterSize(f, 256<<10)
	enc := json.NewEncoder(bw)
	enc.SetEscapeHTML(false)
	var n int64
	err = q.ExportRows(ctx, set, userID, func(row map[string]any) error {
		edit(row)
		n++
		return enc.Encode(row)
	})
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		return 0, err
	}
	size, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return 0, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: set.Name + ".jsonl", Mode: 0o600, Size: size, ModTime: now}); err != nil {
		return 0, err
	}
	_, err = io.Copy(tw, f)
	return n, err
}
