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

// Scheduler writes a backup every backup.interval into backup.dir, keeping
// the newest backup.keep, between Start and Close.
type Scheduler struct {
	Cfg *config.Config
	DB  *storage.DB
	Log *slog.Logger
	Now func() time.Time
	// Done, if set, is told of each backup's outcome (metrics).
	Done func(error)

	stop    context.CancelFunc
	stopped chan struct{}
}

// Start begins the schedule (nothing without backup.interval).
func (s *Scheduler) Start(ctx context.Context) {
	if s.Cfg.Backup.Interval == 0 {
		return
	}
	ctx, s.stop = context.WithCancel(ctx)
	s.stopped = make(chan struct{})
	go func() {
		defer close(s.stopped)
		s.run(ctx)
	}()
}

// Close stops the schedule, and a backup being written.
func (s *Scheduler) Close() {
	if s.stop != nil {
		s.stop()
		<-s.stopped
	}
}

func (s *Scheduler) run(ctx context.Context) {
	for {
		t := time.NewTimer(s.Cfg.Backup.Interval.D())
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		path, err := ToDir(ctx, s.Cfg, s.DB, s.Cfg.Backup.Dir, s.Now())
		if ctx.Err() != nil {
			return
		}
		if s.Done != nil {
			s.Done(err)
		}
		if err != nil {
			s.Log.Error("backup failed", "err", err)
			continue
		}
		s.Log.Info("backup written", "file", filepath.Base(path))
		Prune(s.Cfg.Backup.Dir, s.Cfg.Backup.Keep)
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
