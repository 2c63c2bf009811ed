// Package backup writes and restores encrypted backups of an instance: a
// consistent snapshot of its database (taken while it serves) and its media
// directory, in a tar stream compressed with zstd and encrypted with age to
// the operator's recipients, so the host that keeps backups cannot read
// them. A manifest with a SHA-256 of every file comes last; age's
// authenticated encryption already rejects a truncated or altered stream.
package backup

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/storage"
)

// Format is the version of the backup layout this package writes.
const Format = 1

// Manifest describes a backup; it is the archive's last entry.
type Manifest struct {
	Format        int    `json:"format"`
	ServerName    string `json:"server_name"`
	CreatedTS     int64  `json:"created_ts"`
	SchemaVersion int    `json:"schema_version"`
	Files         []File `json:"files"`
	// MediaMissing, after a restore from a generation, is the media the
	// destination did not hold (removed from the restored database).
	MediaMissing []string `json:"-"`
}

// File is one file of a backup.
type File struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

const dbName = "redoubt.db"

// DatabaseFile is where Restore puts the database in its data directory.
func DatabaseFile(dataDir string) string { return filepath.Join(dataDir, dbName) }

// TempFiles are the names (glob patterns) of what Write and Restore make
// beside the database while they run: a plaintext snapshot, an unpacked
// backup. They remove them when done; destroy removes any a crash left.
var TempFiles = []string{".backup-*", ".restore-*"}

// Write writes an encrypted backup of the instance to w: the database and,
// if mediaDir is not empty, the media directory.
func Write(ctx context.Context, db *storage.DB, dbPath, mediaDir, serverName string, recipients []age.Recipient, w io.Writer, now time.Time) (Manifest, error) {
	m := Manifest{Format: Format, ServerName: serverName, CreatedTS: now.UnixMilli()}
	if len(recipients) == 0 {
		return m, errors.New("backup: no recipients to encrypt to")
	}
	var err error
	if m.SchemaVersion, err = db.SchemaVersion(ctx); err != nil {
		return m, err
	}
	// The snapshot is a plaintext copy of the database: beside it (same
	// file system, same protection), and shredded afterwards.
	snap := filepath.Join(filepath.Dir(dbPath), fmt.Sprintf(".backup-%d.db", now.UnixNano()))
	defer shred.File(snap)
	if err := db.Snapshot(ctx, snap); err != nil {
		return m, fmt.Errorf("backup: snapshot: %w", err)
	}
	return archive(m, snap, mediaDir, recipients, w, now)
}

// archive writes the database file at dbFile (a copy no one writes to)
// and the media directory as an encrypted backup to w.
func archive(m Manifest, dbFile, mediaDir string, recipients []age.Recipient, w io.Writer, now time.Time) (Manifest, error) {
	aw, err := age.Encrypt(w, recipients...)
	if err != nil {
		return m, err
	}
	zw, err := zstd.NewWriter(aw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return m, err
	}
	tw := tar.NewWriter(zw)
	add := func(name, path string) error {
		f, err := addFile(tw, name, path)
		if err == nil {
			m.Files = append(m.Files, f)
		}
		return err
	}
	if err := add(dbName, dbFile); err != nil {
		return m, err
	}
	if mediaDir != "" {
		err := filepath.WalkDir(mediaDir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".upload-") {
				return err
			}
			rel, err := filepath.Rel(mediaDir, path)
			if err != nil {
				return err
			}
			return add("media/"+filepath.ToSlash(rel), path)
		})
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return m, err
		}
	}
	manifest, _ := json.MarshalIndent(m, "", "  ")
	if err := tw.WriteHeader(&tar.Header{Name: "manifest.json", Mode: 0o600, Size: int64(len(manifest)), ModTime: now}); err != nil {
		return m, err
	}
	if _, err := tw.Write(manifest); err != nil {
		return m, err
	}
	for _, c := range []io.Closer{tw, zw, aw} {
		if err := c.Close(); err != nil {
			return m, err
		}
	}
	return m, nil
}

func addFile(tw *tar.Writer, name, path string) (File, error) {
	f, err := os.Open(path)
	if err != nil {
		return File{}, err
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return File{}, err
	}
	if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o600, Size: info.Size(), ModTime: info.ModTime()}); err != nil {
		return File{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tw, h), f)
	if err != nil {
		return File{}, err
	}
	if n != info.Size() {
		return File{}, fmt.Errorf("backup: %s changed while being copied", path)
	}
	return File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ErrExists is returned by Restore when the target holds an instance and
// force was not given.
var ErrExists = errors.New("restore: the target already holds an instance (use --force to replace it)")

// Restore decrypts a backup, verifies it (every file's checksum, SQLite's
// integrity_check, the schema version), drops the one-time keys it holds,
// and only then moves it into dataDir: the database as redoubt.db, media
// under media/. On any error the target is left as it was.
func Restore(ctx context.Context, from io.Reader, identities []age.Identity, dataDir string, force bool) (Manifest, error) {
	return restoreInto(ctx, dataDir, force, func(tmp string) (Manifest, error) { return unpack(from, identities, tmp) })
}

// restoreInto has fill write a restore into a temporary directory inside
// dataDir, then installs it.
func restoreInto(ctx context.Context, dataDir string, force bool, fill func(tmp string) (Manifest, error)) (Manifest, error) {
	var m Manifest
	target := filepath.Join(dataDir, dbName)
	if _, err := os.Stat(target); err == nil && !force {
		return m, ErrExists
	}
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return m, err
	}
	tmp, err := os.MkdirTemp(dataDir, ".restore-")
	if err != nil {
		return m, err
	}
	defer shred.Tree(tmp, func(string, int64) {})
	if m, err = fill(tmp); err != nil {
		return m, err
	}
	return m, install(ctx, tmp, dataDir)
}

// unpack decrypts a backup into tmp and checks every file against its
// manifest.
func unpack(from io.Reader, identities []age.Identity, tmp string) (Manifest, error) {
	var m Manifest
	ar, err := age.Decrypt(from, identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return m, errors.New("restore: this backup is not encrypted to the given identity")
		}
		return m, fmt.Errorf("restore: not a readable backup: %w", err)
	}
	zr, err := zstd.NewReader(ar, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return m, fmt.Errorf("restore: damaged backup: %w", err)
	}
	defer zr.Close()
	got := map[string]File{}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return m, fmt.Errorf("restore: damaged or truncated backup: %w", err)
		}
		if h.Name == "manifest.json" {
			if err := json.NewDecoder(io.LimitReader(tr, 16<<20)).Decode(&m); err != nil {
				return m, fmt.Errorf("restore: damaged manifest: %w", err)
			}
			continue
		}
		if !validName(h.Name) || h.Typeflag != tar.TypeReg {
			return m, fmt.Errorf("restore: unexpected entry %q in backup", h.Name)
		}
		f, err := extract(tr, filepath.Join(tmp, filepath.FromSlash(h.Name)), h.Name)
		if err != nil {
			return m, fmt.Errorf("restore: damaged or truncated backup: %w", err)
		}
		got[h.Name] = f
	}
	// Reading to the end also made age check its last chunk: a backup cut
	// short fails above, never here.
	if m.Format != Format {
		return m, fmt.Errorf("restore: backup format %d is not %d (or the manifest is missing)", m.Format, Format)
	}
	if len(got) != len(m.Files) {
		return m, fmt.Errorf("restore: backup holds %d files, its manifest lists %d", len(got), len(m.Files))
	}
	for _, f := range m.Files {
		if got[f.Name] != f {
			return m, fmt.Errorf("restore: %s does not match its checksum", f.Name)
		}
	}
	return m, nil
}

// install checks the database unpacked in tmp, drops its one-time keys and
// moves it, and the media beside it, into dataDir.
func install(ctx context.Context, tmp, dataDir string) error {
	target := filepath.Join(dataDir, dbName)
	dbPath := filepath.Join(tmp, dbName)
	if err := check(ctx, dbPath); err != nil {
		return err
	}
	// Opening migrates an older schema; then the one-time keys go: clients
	// may have claimed any of them after the backup was taken, and an Olm
	// session must never be built twice on one key. Clients see a count of
	// zero and upload fresh ones.
	db, err := storage.Open(ctx, dbPath)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	err = db.Write(ctx, func(q storage.Q) error { return q.DropOneTimeKeys(ctx) })
	if err == nil {
		err = db.Checkpoint(ctx)
	}
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	// Verified: now replace what is there.
	for _, suffix := range []string{"", "-wal", "-shm"} {
		if _, err := shred.File(target + suffix); err != nil {
			return err
		}
	}
	if err := os.Rename(dbPath, target); err != nil {
		return err
	}
	if media := filepath.Join(tmp, "media"); exists(media) {
		if err := shred.Tree(filepath.Join(dataDir, "media"), func(string, int64) {}); err != nil {
			return err
		}
		if err := os.Rename(media, filepath.Join(dataDir, "media")); err != nil {
			return err
		}
	}
	return nil
}

func exists(path string) bool { _, err := os.Stat(path); return err == nil }

// validName accepts the names a backup holds: the database and media files
// below media/, never a path that leaves the target.
func validName(name string) bool {
	if name == dbName {
		return true
	}
	rest, ok := strings.CutPrefix(name, "media/")
	if !ok || rest == "" {
		return false
	}
	for _, part := range strings.Split(rest, "/") {
		if part == "" || part == "." || part == ".." {
			return false
		}
	}
	return true
}

func extract(r io.Reader, path, name string) (File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return File{}, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return File{}, err
	}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return File{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, err
}

// check runs SQLite's integrity_check on a database file.
func check(ctx context.Context, path string) error {
	problems, err := Check(ctx, path)
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	if len(problems) > 0 {
		return fmt.Errorf("restore: the database fails its integrity check: %s", strings.Join(problems, "; "))
	}
	return nil
}

// Check runs SQLite's integrity and foreign key checks on a database file
// (live or not: it only reads) and returns the problems found.
func Check(ctx context.Context, path string) ([]string, error) {
	c, err := sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(10000)")
	if err != nil {
		return nil, err
	}
	defer c.Close()
	var problems []string
	rows, err := c.QueryContext(ctx, "PRAGMA integrity_check")
	if err != nil {
		return nil, err
	}
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return nil, err
		}
		if s != "ok" {
			problems = append(problems, s)
		}
	}
	rows.Close()
	fk, err := c.QueryContext(ctx, "PRAGMA foreign_key_check")
	if err != nil {
		return nil, err
	}
	defer fk.Close()
	for fk.Next() {
		var table, parent string
		var rowid, idx sql.NullInt64
		if err := fk.Scan(&table, &rowid, &parent, &idx); err != nil {
			return nil, err
		}
		problems = append(problems, fmt.Sprintf("%s row %d refers to a missing %s", table, rowid.Int64, parent))
	}
	return problems, fk.Err()
}
