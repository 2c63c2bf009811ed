package backup

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/storage"
)

// Recipients parses the configured age public keys.
func Recipients(keys []string) ([]age.Recipient, error) {
	var out []age.Recipient
	for _, k := range keys {
		r, err := age.ParseX25519Recipient(k)
		if err != nil {
			return nil, fmt.Errorf("backup: recipient %q: %w", k, err)
		}
		out = append(out, r)
	}
	return out, nil
}

// FileName is a backup's file name: server name and UTC time, so that
// names sort by age.
func FileName(serverName string, t time.Time) string {
	return fmt.Sprintf("redoubt-%s-%s.tar.zst.age", strings.NewReplacer(":", "_", "/", "_").Replace(serverName),
		t.UTC().Format("20060102T150405Z"))
}

// ToDir writes a backup into dir (written under a temporary name, renamed
// when complete) and returns its path.
func ToDir(ctx context.Context, cfg *config.Config, db *storage.DB, dir string, now time.Time) (string, error) {
	recipients, err := Recipients(cfg.Backup.Recipients)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	path := filepath.Join(dir, FileName(cfg.ServerName, now))
	f, err := os.OpenFile(path+".partial", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = Write(ctx, db, cfg.Database, cfg.Media.Path, cfg.ServerName, recipients, f, now)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(path+".partial", path)
	}
	if err != nil {
		os.Remove(path + ".partial")
		return "", err
	}
	return path, db.Write(ctx, func(q storage.Q) error { return q.SetInstanceState(ctx, "last_backup_ts", now.UnixMilli()) })
}

// Run writes a backup every backup.interval into backup.dir, keeping the
// newest backup.keep, until ctx ends.
func Run(ctx context.Context, cfg *config.Config, db *storage.DB, log *slog.Logger, now func() time.Time, done func(error)) {
	if cfg.Backup.Interval == 0 {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(cfg.Backup.Interval.D()):
		}
		path, err := ToDir(ctx, cfg, db, cfg.Backup.Dir, now())
		if ctx.Err() != nil {
			return
		}
		if done != nil {
			done(err)
		}
		if err != nil {
			log.Error("backup failed", "err", err)
			continue
		}
		log.Info("backup written", "file", filepath.Base(path))
		Prune(cfg.Backup.Dir, cfg.Backup.Keep)
	}
}

// Prune deletes all but the newest keep backups in dir.
func Prune(dir string, keep int) {
	files, _ := filepath.Glob(filepath.Join(dir, "redoubt-*.tar.zst.age"))
	sort.Strings(files)
	for i := 0; i < len(files)-keep; i++ {
		_, _ = shred.File(files[i])
	}
}
