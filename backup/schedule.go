package backup

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"filippo.io/age"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/objectstore"
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

// ToDir writes a backup into dir and returns its path.
func ToDir(ctx context.Context, cfg *config.Config, db *storage.DB, dir string, now time.Time) (string, error) {
	t, err := Take(ctx, cfg, db, dir, nil, now)
	return t.Path, err
}

// Taken is what Take wrote.
type Taken struct {
	Path string // the file in dir, if one was given
	Sent []Sent // one per destination
}

// Take writes one backup, from one snapshot of the database: into dir if
// it is set (under a temporary name, renamed when complete), and to every
// store. A store that fails is reported in Sent and does not stop the
// others; the error says whether the backup was written anywhere.
func Take(ctx context.Context, cfg *config.Config, db *storage.DB, dir string, stores []*objectstore.Store, now time.Time) (Taken, error) {
	var t Taken
	recipients, err := Recipients(cfg.Backup.Recipients)
	if err != nil {
		return t, err
	}
	var out []io.Writer
	var f *os.File
	if dir != "" {
		t.Path = filepath.Join(dir, FileName(cfg.ServerName, now))
		if f, err = createPartial(t.Path); err != nil {
			return t, err
		}
		out = append(out, f)
	}
	var parts *partWriter
	if len(stores) > 0 {
		parts = newPartWriter(ctx, stores, snapshotName(now), "")
		out = append(out, parts)
	}
	m, err := Write(ctx, db, cfg.Database, cfg.Media.Path, cfg.ServerName, recipients, io.MultiWriter(out...), now)
	if f != nil {
		if err = completePartial(f, t.Path, err); err != nil {
			t.Path = ""
		}
	}
	if err != nil {
		return t, err
	}
	if parts != nil {
		t.Sent = parts.finish(m, func(s *objectstore.Store) error {
			d := destination(cfg, s.Name)
			return PruneStore(ctx, s, d.Keep, d.MaxAge.D(), now)
		})
	}
	if t.Path == "" && !slices.ContainsFunc(t.Sent, func(s Sent) bool { return s.Err == nil }) {
		return t, errors.New("backup: every destination failed")
	}
	return t, db.Write(ctx, func(q storage.Q) error {
		for _, s := range t.Sent {
			if s.Err == nil {
				if err := q.SetInstanceState(ctx, DestinationState(s.Store.Name), now.UnixMilli()); err != nil {
					return err
				}
			}
		}
		return q.SetInstanceState(ctx, "last_backup_ts", now.UnixMilli())
	})
}

// destination is a store's configuration.
func destination(cfg *config.Config, name string) config.Destination {
	if d := cfg.Backup.Destination(name); d != nil {
		return *d
	}
	return config.Destination{Name: name, Keep: 1 << 30}
}

// createPartial creates the file a backup is written to before it is
// complete: path with ".partial" appended.
func createPartial(path string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, err
	}
	return os.OpenFile(path+".partial", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
}

// completePartial makes a backup written without error durable under its
// name, or removes what was written.
func completePartial(f *os.File, path string, err error) error {
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
	}
	return err
}

// DestinationState is the instance state that keeps when a destination
// last received a whole snapshot.
func DestinationState(name string) string { return "last_backup_ts:" + name }

// Scheduler writes a backup every backup.interval into backup.dir,
// keeping the newest backup.keep, and to every destination (Stores), each
// keeping its own number, between Start and Close.
type Scheduler struct {
	Cfg    *config.Config
	DB     *storage.DB
	Stores []*objectstore.Store
	Log    *slog.Logger
	Now    func() time.Time
	// Done, if set, is told of each backup's outcome, and Sent of each
	// destination's (metrics).
	Done func(error)
	Sent func(destination string, err error, at time.Time)

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
		timer := time.NewTimer(s.Cfg.Backup.Interval.D())
		select {
		case <-ctx.Done():
			timer.Stop()
			return
		case <-timer.C:
		}
		now := s.Now()
		t, err := Take(ctx, s.Cfg, s.DB, s.Cfg.Backup.Dir, s.Stores, now)
		if ctx.Err() != nil {
			return
		}
		if s.Done != nil {
			s.Done(err)
		}
		for _, sent := range t.Sent {
			if s.Sent != nil {
				s.Sent(sent.Store.Name, sent.Err, now)
			}
			if sent.Err != nil {
				s.Log.Error("backup not sent to a destination; the next one will be", "destination", sent.Store.Name, "err", sent.Err)
			} else {
				s.Log.Info("backup sent", "destination", sent.Store.Name, "snapshot", sent.Snapshot)
			}
			if sent.PruneErr != nil {
				s.Log.Error("old snapshots not removed from a destination", "destination", sent.Store.Name, "err", sent.PruneErr)
			}
		}
		if err != nil {
			s.Log.Error("backup failed", "err", err)
			continue
		}
		if t.Path != "" {
			s.Log.Info("backup written", "file", filepath.Base(t.Path))
			Prune(s.Cfg.Backup.Dir, s.Cfg.Backup.Keep)
		}
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
