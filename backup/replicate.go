package backup

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/redoubt-systems/redoubt/config"
	"github.com/redoubt-systems/redoubt/internal/shred"
	"github.com/redoubt-systems/redoubt/objectstore"
	"github.com/redoubt-systems/redoubt/storage"
)

// Continuous replication. Between snapshots the database's changes go to
// every destination within seconds of commit, as generations, below the
// destination's prefix:
//
//	generations/TIME/base/part-..., manifest.json  the database file as it
//	    was when the generation began (and the media), in the snapshot
//	    layout, the manifest written once the first segment is there
//	generations/TIME/wal/SEQ-MS                     segment SEQ: the pages
//	    of the transactions committed since the one before, read from the
//	    WAL at MS (Unix milliseconds), compressed and encrypted with age
//
// A restore takes a generation's base and applies its segments in order up
// to the time asked for. A generation begins when the server starts, every
// GenerationEvery, and when a destination that missed a segment is to be
// brought back. Why not Litestream: docs/design.md.
const generationsDir = "generations/"

// Tuning, variables for tests.
var (
	// ReplicateEvery is how often the WAL is read and shipped: the RPO.
	ReplicateEvery = time.Second
	// GenerationEvery is how often a new base is taken.
	GenerationEvery = 24 * time.Hour
	// RejoinAfter is how long a destination that missed a segment waits
	// before a new generation brings it back.
	RejoinAfter = time.Minute
)

// Replicator ships the database's changes between Start and Close.
type Replicator struct {
	Cfg    *config.Config
	DB     *storage.DB
	Stores []*objectstore.Store
	Log    *slog.Logger
	Now    func() time.Time
	// Shipped, if set, is told after each round of each destination's lag:
	// how far behind what was read from the WAL it is (0: not at all).
	Shipped func(dest string, lag time.Duration)

	recipients []age.Recipient
	hold       *storage.WALHold

	mu       sync.Mutex // guards what the checkpoint hook touches
	wal      walReader
	pending  []*walChunk
	copying  bool // the base is being copied: checkpoints wait
	released bool // the hook let go of the hold
	newMedia []string

	gen      string // "" until a generation has begun
	genStart time.Time
	probed   time.Time // when destinations out of gen were last tried
	seq      int
	dests    []*replica
	cancel   context.CancelFunc
	done     chan struct{}

	lagMu sync.Mutex
	lags  map[string]time.Duration
}

// Start begins the first generation in the background and ships from then
// on.
func (r *Replicator) Start(ctx context.Context) error {
	var err error
	if r.recipients, err = Recipients(r.Cfg.Backup.Recipients); err != nil {
		return err
	}
	if r.Now == nil {
		r.Now = time.Now
	}
	if r.hold, err = r.DB.NewWALHold(ctx); err != nil {
		return err
	}
	if err := r.hold.Hold(ctx); err != nil {
		r.hold.Close()
		return err
	}
	if err := r.DB.Replicate(&storage.CheckpointHook{Before: r.beforeCheckpoint, After: r.afterCheckpoint}); err != nil {
		r.hold.Close()
		return err
	}
	now := r.Now()
	for _, s := range r.Stores {
		r.dests = append(r.dests, newReplica(s, r.Log, now))
	}
	ctx, r.cancel = context.WithCancel(context.WithoutCancel(ctx))
	r.done = make(chan struct{})
	go r.run(ctx)
	return nil
}

// Lag is how far a destination is behind, as of the last round; false
// before the first.
func (r *Replicator) Lag(dest string) (time.Duration, bool) {
	if r == nil {
		return 0, false
	}
	r.lagMu.Lock()
	defer r.lagMu.Unlock()
	lag, ok := r.lags[dest]
	return lag, ok
}

// Close ships what is committed (giving each destination up to ten
// seconds), then stops.
func (r *Replicator) Close() {
	if r == nil || r.cancel == nil {
		return
	}
	r.cancel()
	<-r.done
	for _, d := range r.dests {
		d.close(10 * time.Second)
	}
	r.DB.Replicate(nil)
	r.hold.Close()
}

func (r *Replicator) run(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(ReplicateEvery)
	defer t.Stop()
	for {
		r.round(ctx)
		select {
		case <-ctx.Done():
			if r.gen != "" { // the last commits
				r.capture()
				r.ship()
			}
			return
		case <-t.C:
		}
	}
}

// round ships what was committed since the last, or begins a generation
// when one is due.
func (r *Replicator) round(ctx context.Context) {
	now := r.Now()
	if r.gen == "" || now.Sub(r.genStart) >= GenerationEvery || r.rejoinDue(ctx, now) {
		if err := r.begin(ctx, now); err != nil && ctx.Err() == nil {
			r.Log.Error("continuous backup: a new generation could not begin", "error", err)
		}
	} else {
		r.capture()
		r.ship()
	}
	r.report(r.Now())
}

// rejoinDue reports whether a destination out of the generation can be
// reached again, RejoinAfter since the generation began. It tries at most
// once per RejoinAfter: a store that drops requests holds up this round's
// shipping to the others for as long as the try waits.
func (r *Replicator) rejoinDue(ctx context.Context, now time.Time) bool {
	if now.Sub(r.genStart) < RejoinAfter || now.Sub(r.probed) < RejoinAfter {
		return false
	}
	for _, d := range r.dests {
		if !d.in(r.gen) {
			r.probed = now
			probe, cancel := context.WithTimeout(ctx, 10*time.Second)
			_, err := d.store.List(probe, generationsDir+r.gen+"/base/manifest")
			cancel()
			if err == nil {
				return true
			}
		}
	}
	return false
}

// capture reads the frames committed since the last read.
func (r *Replicator) capture() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.captureLocked()
}

func (r *Replicator) captureLocked() {
	c, err := r.wal.read()
	if err != nil {
		r.Log.Error("continuous backup: reading the WAL", "error", err)
		return
	}
	if c != nil {
		c.read = r.Now()
		r.pending = append(r.pending, c)
	}
}

// beforeCheckpoint runs with the writer held: what the WAL holds is read
// before a checkpoint may reset it, and the hold is let go so that the
// checkpoint can copy all of it. While the base is copied, checkpoints wait.
func (r *Replicator) beforeCheckpoint() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.copying {
		return false
	}
	r.captureLocked()
	r.hold.Release()
	r.released = true
	return true
}

func (r *Replicator) afterCheckpoint() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.released {
		r.released = false
		if err := r.hold.Hold(context.Background()); err != nil {
			r.Log.Error("continuous backup: holding the WAL", "error", err)
		}
	}
}

// take seals the segments captured, numbering them.
func (r *Replicator) take() ([]segment, error) {
	r.mu.Lock()
	pending := r.pending
	r.pending = nil
	r.mu.Unlock()
	var out []segment
	for _, c := range pending {
		body, err := r.seal(c)
		if err != nil {
			return nil, err
		}
		out = append(out, segment{gen: r.gen, body: body, read: c.read,
			key: fmt.Sprintf("%s%s/wal/%010d-%013d", generationsDir, r.gen, r.seq, c.read.UnixMilli())})
		r.seq++
	}
	return out, nil
}

// ship queues the segments captured for every destination.
func (r *Replicator) ship() {
	segs, err := r.take()
	if err != nil {
		r.Log.Error("continuous backup: sealing a segment; a new generation begins", "error", err)
		r.gen = ""
		return
	}
	r.mu.Lock()
	media := r.newMedia
	r.newMedia = nil
	r.mu.Unlock()
	for _, id := range media {
		segs = append(segs, segment{gen: r.gen, key: mediaKey(r.gen, id), open: r.encrypted(r.mediaFile(id))})
	}
	for _, seg := range segs {
		for _, d := range r.dests {
			d.send(seg)
		}
	}
}

// seal compresses and encrypts a segment.
func (r *Replicator) seal(c *walChunk) ([]byte, error) {
	var b bytes.Buffer
	aw, err := age.Encrypt(&b, r.recipients...)
	if err != nil {
		return nil, err
	}
	zw, err := zstd.NewWriter(aw, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	if err := c.encode(zw); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// begin starts a generation: under a fresh hold it copies the database
// file and reads the WAL from its first frame, and sends both to every
// destination, then the base's manifest, which makes the generation whole.
// Those that get all of it join it.
func (r *Replicator) begin(ctx context.Context, now time.Time) error {
	schema, err := r.DB.SchemaVersion(ctx)
	if err != nil {
		return err
	}
	copyPath := filepath.Join(filepath.Dir(r.Cfg.Database), fmt.Sprintf(".backup-%d.db", now.UnixNano()))
	defer shred.File(copyPath)
	if err := r.copyBase(ctx, copyPath); err != nil {
		return err
	}
	name := snapshotName(now)
	parts := newPartWriter(ctx, r.Stores, name, generationsDir+name+"/base/")
	// Media files go on their own (media.go), not in the base.
	m, err := archive(Manifest{Format: Format, ServerName: r.Cfg.ServerName, CreatedTS: now.UnixMilli(), SchemaVersion: schema},
		copyPath, "", r.recipients, parts, now)
	if err != nil {
		return err
	}
	parts.flush()
	r.gen, r.genStart, r.seq = name, now, 0
	segs, err := r.take()
	if err != nil {
		r.gen = ""
		return err
	}
	for _, seg := range segs {
		parts.putAll(seg.key, seg.body)
	}
	r.syncMedia(ctx, name, parts.sent)
	through := now
	if len(segs) > 0 {
		through = segs[len(segs)-1].read
	}
	for i, sent := range parts.finish(m, func(s *objectstore.Store) error {
		return PruneGenerations(ctx, s, destination(r.Cfg, s.Name).Keep)
	}) {
		if sent.Err != nil {
			r.Log.Error("continuous backup: a destination did not get the new generation", "destination", sent.Store.Name, "error", sent.Err)
			continue
		}
		if sent.PruneErr != nil {
			r.Log.Warn("continuous backup: old generations not removed", "destination", sent.Store.Name, "error", sent.PruneErr)
		}
		r.dests[i].join(name, through)
	}
	r.Log.Info("continuous backup: new generation", "generation", name)
	return nil
}

// copyBase copies the database file under a fresh hold and reads the WAL
// from its first frame: the frames a checkpoint copies into the file
// meanwhile are among them.
func (r *Replicator) copyBase(ctx context.Context, path string) error {
	r.mu.Lock()
	r.copying = true
	r.pending, r.wal = nil, walReader{path: r.DB.WALPath()}
	err := r.hold.Hold(ctx)
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.copying = false
		r.mu.Unlock()
	}()
	if err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = r.DB.CopyFile(f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	r.capture()
	return nil
}

// report records each destination's lag, and logs an error once when one
// falls further behind than backup.max_lag.
func (r *Replicator) report(now time.Time) {
	for _, d := range r.dests {
		lag := d.lag(r.gen, now)
		r.lagMu.Lock()
		if r.lags == nil {
			r.lags = map[string]time.Duration{}
		}
		r.lags[d.store.Name] = lag
		r.lagMu.Unlock()
		if r.Shipped != nil {
			r.Shipped(d.store.Name, lag)
		}
		over := lag > r.Cfg.Backup.MaxLag.D()
		d.mu.Lock()
		switch {
		case over && !d.lagging:
			r.Log.Error("continuous backup: a destination is behind by more than backup.max_lag",
				"destination", d.store.Name, "lag", lag.Round(time.Second).String())
		case !over && d.lagging:
			r.Log.Info("continuous backup: a destination caught up", "destination", d.store.Name)
		}
		d.lagging = over
		d.mu.Unlock()
	}
}
