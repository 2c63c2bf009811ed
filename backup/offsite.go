package backup

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/redoubt-systems/redoubt/objectstore"
)

// Off-site snapshots. At each destination, below its prefix:
//
//	snapshots/TIME/part-000000, ...  the encrypted backup stream Write
//	                                 produces, cut into parts of PartSize
//	snapshots/TIME/manifest.json     written last: the parts (size, SHA-256),
//	                                 the time, the schema version
//
// A snapshot without its manifest was cut off while being sent and is never
// restored. The manifest is not encrypted, so listing needs no private key;
// it holds nothing of the instance's content, which the parts hold, each
// byte of them under age.
const snapshotsDir = "snapshots/"

// PartSize is the size of a snapshot's parts; one is held in memory while
// it is sent to every destination.
var PartSize = 8 << 20

// PutTimeout bounds one attempt at sending one object (a part or a segment).
var PutTimeout = 2 * time.Minute

// Retry is how a failed put is retried: how many attempts in all, and the
// first delay, doubled after each attempt.
var Retry = struct {
	Attempts int
	Delay    time.Duration
}{4, time.Second}

// Snapshot is one snapshot at a destination.
type Snapshot struct {
	Name          string `json:"-"`
	Complete      bool   `json:"-"`
	dir           string // the prefix of its objects: snapshots/NAME/ unless set
	Format        int    `json:"format"`
	ServerName    string `json:"server_name"`
	CreatedTS     int64  `json:"created_ts"`
	SchemaVersion int    `json:"schema_version"`
	Size          int64  `json:"size"`
	Parts         []File `json:"parts"`
}

// Sent is how a backup went at one destination: Err if the snapshot is
// not there whole, PruneErr if it is but older ones could not be removed.
type Sent struct {
	Store         *objectstore.Store
	Snapshot      string
	Err, PruneErr error
}

// partWriter cuts the backup stream into parts and puts each on every
// destination that has not failed yet. Its Write never fails: a destination
// that fails is dropped (and reported), the others go on.
type partWriter struct {
	ctx   context.Context
	snap  Snapshot
	buf   []byte
	sent  []Sent
	wrote bool
}

func newPartWriter(ctx context.Context, stores []*objectstore.Store, name, dir string) *partWriter {
	w := &partWriter{ctx: ctx, snap: Snapshot{Name: name, Format: Format, dir: dir}, buf: make([]byte, 0, PartSize)}
	for _, s := range stores {
		w.sent = append(w.sent, Sent{Store: s, Snapshot: name})
	}
	return w
}

func (w *partWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(PartSize-len(w.buf), len(p))
		w.buf = append(w.buf, p[:k]...)
		p = p[k:]
		if len(w.buf) == PartSize {
			w.flush()
		}
	}
	return n, nil
}

// flush sends the part in the buffer.
func (w *partWriter) flush() {
	if len(w.buf) == 0 && w.wrote {
		return
	}
	sum := sha256.Sum256(w.buf)
	part := File{Name: fmt.Sprintf("part-%06d", len(w.snap.Parts)), Size: int64(len(w.buf)), SHA256: hex.EncodeToString(sum[:])}
	w.putAll(w.snap.prefix()+part.Name, w.buf)
	w.snap.Parts = append(w.snap.Parts, part)
	w.snap.Size += part.Size
	w.buf, w.wrote = w.buf[:0], true
}

func (w *partWriter) putAll(key string, body []byte) {
	stores := make([]*objectstore.Store, len(w.sent))
	for i, s := range w.sent {
		stores[i] = s.Store
	}
	failed := func(i int) bool { return w.sent[i].Err != nil }
	for i, err := range putEach(w.ctx, stores, key, body, failed) {
		if !failed(i) {
			w.sent[i].Err = err
		}
	}
}

// putEach puts one object on several stores at once, leaving out those
// skip names, and reports each one's error.
func putEach(ctx context.Context, stores []*objectstore.Store, key string, body []byte, skip func(int) bool) []error {
	errs := make([]error, len(stores))
	var wg sync.WaitGroup
	for i, s := range stores {
		if !skip(i) {
			wg.Go(func() { errs[i] = put(ctx, s, key, body) })
		}
	}
	wg.Wait()
	return errs
}

// finish sends the last part and then the manifest, which makes the
// snapshot whole, and has prune remove what each destination keeps no
// longer.
func (w *partWriter) finish(m Manifest, prune func(*objectstore.Store) error) []Sent {
	w.flush()
	w.snap.ServerName, w.snap.CreatedTS, w.snap.SchemaVersion = m.ServerName, m.CreatedTS, m.SchemaVersion
	manifest, _ := json.MarshalIndent(w.snap, "", "  ")
	w.putAll(w.snap.prefix()+"manifest.json", manifest)
	for i := range w.sent {
		if w.sent[i].Err == nil {
			w.sent[i].PruneErr = prune(w.sent[i].Store)
		}
	}
	return w.sent
}

// prefix is where a snapshot's objects are.
func (s Snapshot) prefix() string {
	if s.dir != "" {
		return s.dir
	}
	return snapshotsDir + s.Name + "/"
}

func put(ctx context.Context, s *objectstore.Store, key string, body []byte) error {
	return retry(ctx, func(ctx context.Context) error { return s.Put(ctx, key, body) })
}

// retry runs an operation on a store until it succeeds, at most
// Retry.Attempts times, each attempt bounded by PutTimeout. A local file
// gone is not retried.
func retry(ctx context.Context, op func(context.Context) error) error {
	delay := Retry.Delay
	for attempt := 1; ; attempt++ {
		attemptCtx, cancel := context.WithTimeout(ctx, PutTimeout)
		err := op(attemptCtx)
		cancel()
		if err == nil || attempt >= Retry.Attempts || ctx.Err() != nil || errors.Is(err, fs.ErrNotExist) {
			return err
		}
		select {
		case <-time.After(delay):
		case <-ctx.Done():
			return ctx.Err()
		}
		delay *= 2
	}
}

// snapshotName is a snapshot's name: its UTC time, so names sort by age.
func snapshotName(t time.Time) string { return t.UTC().Format("20060102T150405.000Z") }

// Snapshots lists the snapshots at a destination, oldest first; the
// complete ones carry their manifest.
func Snapshots(ctx context.Context, s *objectstore.Store) ([]Snapshot, error) {
	objects, err := s.List(ctx, snapshotsDir)
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, o := range objects {
		name, file, ok := strings.Cut(strings.TrimPrefix(o.Key, snapshotsDir), "/")
		if !ok {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, Snapshot{Name: name})
		}
		snap := &out[len(out)-1]
		if file != "manifest.json" {
			if !snap.Complete { // the manifest (listed first) has the size
				snap.Size += o.Size
			}
			continue
		}
		if err := readManifest(ctx, s, o.Key, snap); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// readManifest reads the manifest at key into snap, which it makes
// complete.
func readManifest(ctx context.Context, s *objectstore.Store, key string, snap *Snapshot) error {
	b, err := s.Get(ctx, key, 16<<20)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(b, snap); err != nil {
		return fmt.Errorf("%s: %s is damaged: %w", s.Name, key, err)
	}
	snap.Complete = true
	return nil
}

// PruneStore removes from a destination the complete snapshots beyond the
// newest keep, and those older than maxAge (if set), always keeping the
// newest; and what incomplete snapshots older than it left.
func PruneStore(ctx context.Context, s *objectstore.Store, keep int, maxAge time.Duration, now time.Time) error {
	snaps, err := Snapshots(ctx, s)
	if err != nil {
		return err
	}
	var complete []Snapshot
	for _, sn := range snaps {
		if sn.Complete {
			complete = append(complete, sn)
		}
	}
	if len(complete) == 0 {
		return nil
	}
	last := complete[len(complete)-1]
	for _, sn := range snaps {
		var drop bool
		switch {
		case sn.Name == last.Name:
		case !sn.Complete:
			drop = sn.Name < last.Name // one newer may be on its way now
		default:
			idx := slices.IndexFunc(complete, func(c Snapshot) bool { return c.Name == sn.Name })
			drop = idx < len(complete)-keep || (maxAge > 0 && now.Sub(time.UnixMilli(sn.CreatedTS)) > maxAge)
		}
		if drop {
			if err := DeleteSnapshot(ctx, s, sn.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteSnapshot removes a snapshot, its manifest first: a snapshot half
// removed is an incomplete one, never a whole one with parts missing.
func DeleteSnapshot(ctx context.Context, s *objectstore.Store, name string) error {
	return deleteWhole(ctx, s, snapshotsDir+name+"/", "manifest.json")
}

// deleteWhole removes the objects below dir, the one that makes them whole
// (dir+manifest) first.
func deleteWhole(ctx context.Context, s *objectstore.Store, dir, manifest string) error {
	objects, err := s.List(ctx, dir)
	if err != nil {
		return err
	}
	keys := []string{dir + manifest}
	for _, o := range objects {
		if o.Key != dir+manifest {
			keys = append(keys, o.Key)
		}
	}
	return s.Delete(ctx, keys...)
}

// Pick chooses the snapshot to restore: the newest complete one taken at or
// before at (any time if at is zero).
func Pick(snaps []Snapshot, at time.Time) (Snapshot, error) {
	for _, sn := range slices.Backward(snaps) {
		if sn.Complete && (at.IsZero() || sn.CreatedTS <= at.UnixMilli()) {
			return sn, nil
		}
	}
	if at.IsZero() {
		return Snapshot{}, errors.New("restore: the destination holds no complete snapshot")
	}
	return Snapshot{}, fmt.Errorf("restore: no complete snapshot was taken at or before %s", at.UTC().Format(time.RFC3339))
}

// Fetch reads a snapshot's stream back, part after part, checking each part
// against the manifest before any of its bytes go on: an altered or
// truncated part stops the restore there.
func Fetch(ctx context.Context, s *objectstore.Store, snap Snapshot) io.Reader {
	return &fetcher{ctx: ctx, s: s, snap: snap}
}

type fetcher struct {
	ctx  context.Context
	s    *objectstore.Store
	snap Snapshot
	next int
	cur  *bytes.Reader
}

func (f *fetcher) Read(p []byte) (int, error) {
	for f.cur == nil || f.cur.Len() == 0 {
		if f.next == len(f.snap.Parts) {
			return 0, io.EOF
		}
		part := f.snap.Parts[f.next]
		b, err := f.s.Get(f.ctx, f.snap.prefix()+part.Name, part.Size)
		if err != nil {
			return 0, fmt.Errorf("restore: snapshot %s: %w", f.snap.Name, err)
		}
		sum := sha256.Sum256(b)
		if int64(len(b)) != part.Size || hex.EncodeToString(sum[:]) != part.SHA256 {
			return 0, fmt.Errorf("restore: %s of snapshot %s at %s does not match its manifest (altered or truncated)", part.Name, f.snap.Name, f.s.Name)
		}
		f.cur, f.next = bytes.NewReader(b), f.next+1
	}
	return f.cur.Read(p)
}
