// Package retention is what Redoubt forgets: a pruner that deletes
// messages and media past their lifetime and connection records past
// theirs, and the erasure of a deactivated account's data. Deletions are
// made in small write transactions, so no client write waits long behind
// them; storage checkpoints the WAL right after each, so that what they
// removed is gone from the file and its WAL within a second.
package retention

import (
	"context"
	"log/slog"
	"time"

	"github.com/tidwall/gjson"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/media"
	"github.com/redoubt-systems/redoubt/rooms"
	"github.com/redoubt-systems/redoubt/storage"
)

// Store is the part of storage.Q retention uses: what it reads
// and writes.
type Store interface {
	EraseUserData(ctx context.Context, userID string) error
	ExpiredMedia(ctx context.Context, beforeTS, now int64, limit int) ([]storage.Media, error)
	ForgetConnections(ctx context.Context, beforeTS int64) (int64, error)
	MarkErased(ctx context.Context, userID string) error
	MediaOf(ctx context.Context, userID string, limit int) ([]storage.Media, error)
	PruneEvents(ctx context.Context, roomID string, after, beforeTS int64, limit int) (deleted int, next int64, more bool, err error)
	RoomRetentions(ctx context.Context) ([]storage.RoomRetention, error)
	SetInstanceState(ctx context.Context, key string, value int64) error
}

var _ Store = storage.Q{}

// Service prunes and erases.
type Service struct {
	Cfg   *config.Config
	DB    storage.View[Store]
	Rooms *rooms.Service
	Media *media.Store
	Now   func() time.Time
	Log   *slog.Logger
	// OnPrune, if set, is told of each pass (metrics).
	OnPrune func(st Stats, err error)

	stop    context.CancelFunc
	stopped chan struct{}
}

const (
	// eventBatch is how many events one pruning transaction looks at; a
	// batch takes a few milliseconds.
	eventBatch = 32
	// pause is left between batches for client writes.
	pause = time.Millisecond
)

// Stats counts what one pruning pass deleted.
type Stats struct {
	Events, Media, Connections int64
}

// Start runs the pruner (serve does; command line tools do not): once at
// once, then every retention.interval, until Close.
func (s *Service) Start(ctx context.Context) {
	ctx, s.stop = context.WithCancel(ctx)
	s.stopped = make(chan struct{})
	go func() {
		defer close(s.stopped)
		s.run(ctx)
	}()
}

// Close stops the pruner and waits for the pass in progress to stop.
func (s *Service) Close() {
	if s.stop != nil {
		s.stop()
		<-s.stopped
	}
}

func (s *Service) run(ctx context.Context) {
	for {
		st, err := s.Prune(ctx)
		if ctx.Err() != nil {
			return
		}
		if s.OnPrune != nil {
			s.OnPrune(st, err)
		}
		if err != nil {
			s.Log.Error("pruning failed", "err", err)
		} else if st != (Stats{}) {
			// Counts only: never what was deleted.
			s.Log.Info("pruned", "events", st.Events, "media", st.Media, "connection_records", st.Connections)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(s.Cfg.Retention.Interval.D()):
		}
	}
}

// Prune runs one pass: events past their room's lifetime, media past the
// media lifetime (and reservations never filled), connection records past
// privacy.ip_retention.
func (s *Service) Prune(ctx context.Context) (Stats, error) {
	var st Stats
	now := s.Now()
	n, err := s.forgetConnections(ctx, now)
	st.Connections = n
	if err != nil {
		return st, err
	}
	rets, err := s.DB.R().RoomRetentions(ctx)
	if err != nil {
		return st, err
	}
	for _, r := range rets {
		life := s.Lifetime(r.Content)
		if life == 0 {
			continue
		}
		n, err := s.pruneRoom(ctx, r.RoomID, now.Add(-life).UnixMilli())
		st.Events += n
		if err != nil {
			return st, err
		}
	}
	n, err = s.pruneMedia(ctx, now)
	st.Media = n
	if err != nil {
		return st, err
	}
	err = s.DB.Write(ctx, func(q Store) error { return q.SetInstanceState(ctx, "last_prune_ts", now.UnixMilli()) })
	return st, err
}

// Lifetime is how long a room keeps its messages (0: forever): its
// m.room.retention max_lifetime (milliseconds, MSC1763) or the server's
// default, within the configured bounds.
func (s *Service) Lifetime(retention []byte) time.Duration {
	r := s.Cfg.Retention
	life := r.DefaultMaxLifetime.D()
	if retention != nil {
		// An explicit policy replaces the default; null or absent is
		// "forever", which the upper bound still limits.
		life = 0
		if v := gjson.GetBytes(retention, "content.max_lifetime"); v.Type == gjson.Number && v.Int() > 0 {
			life = time.Duration(v.Int()) * time.Millisecond
		}
	}
	if min := r.MinLifetime.D(); min > 0 && life > 0 && life < min {
		life = min
	}
	if max := r.MaxLifetime.D(); max > 0 && (life == 0 || life > max) {
		life = max
	}
	return life
}

func (s *Service) pruneRoom(ctx context.Context, roomID string, beforeTS int64) (int64, error) {
	var total int64
	var after int64
	for more := true; more; {
		var n int
		err := s.DB.Write(ctx, func(q Store) error {
			var err error
			n, after, more, err = q.PruneEvents(ctx, roomID, after, beforeTS, eventBatch)
			return err
		})
		total += int64(n)
		if err != nil {
			return total, err
		}
		if err := sleep(ctx, pause); err != nil {
			return total, err
		}
	}
	return total, nil
}

func (s *Service) pruneMedia(ctx context.Context, now time.Time) (int64, error) {
	before := int64(-1 << 62)
	if life := s.Cfg.Retention.MediaMaxLifetime.D(); life > 0 {
		before = now.Add(-life).UnixMilli()
	}
	var total int64
	for {
		expired, err := s.DB.R().ExpiredMedia(ctx, before, now.UnixMilli(), 20)
		if err != nil || len(expired) == 0 {
			return total, err
		}
		for _, m := range expired {
			if err := s.Media.Delete(ctx, m); err != nil {
				return total, err
			}
			total++
		}
	}
}

func (s *Service) forgetConnections(ctx context.Context, now time.Time) (int64, error) {
	var n int64
	err := s.DB.Write(ctx, func(q Store) error {
		var err error
		n, err = q.ForgetConnections(ctx, now.Add(-s.Cfg.Privacy.IPRetention.D()).UnixMilli())
		return err
	})
	return n, err
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// EraseUser deletes what a deactivated account leaves behind: its keys,
// backups, account data, receipts, notifications, uploaded media, and the
// content of every message it sent and of its membership events (served
// as redacted from then on); the room state it set (names, topics,
// aliases, power levels...) stays with the rooms. The caller has left its
// rooms and deactivated it.
func (s *Service) EraseUser(ctx context.Context, userID string) error {
	err := s.DB.Write(ctx, func(q Store) error {
		if err := q.EraseUserData(ctx, userID); err != nil {
			return err
		}
		return q.MarkErased(ctx, userID)
	})
	if err != nil {
		return err
	}
	if _, err := s.Rooms.EraseSender(ctx, userID); err != nil {
		return err
	}
	for {
		media, err := s.DB.R().MediaOf(ctx, userID, 20)
		if err != nil {
			return err
		}
		if len(media) == 0 {
			break
		}
		for _, m := range media {
			if err := s.Media.Delete(ctx, m); err != nil {
				return err
			}
		}
	}
	return nil
}
