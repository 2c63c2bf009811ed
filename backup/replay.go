package backup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/klauspost/compress/zstd"

	"github.com/redoubt-systems/redoubt/objectstore"
)

// Generation is a generation at a destination.
type Generation struct {
	Name     string
	Base     Snapshot // Complete once its manifest is there
	Segments []Segment
}

// Segment is one shipped segment of a generation.
type Segment struct {
	Key  string
	Seq  int
	TS   int64 // when it was read from the WAL, Unix milliseconds
	Size int64
}

// Restorable is the time range a generation restores to, in Unix
// milliseconds: from its base to its last segment (zero if incomplete).
func (g Generation) Restorable() (from, to int64) {
	if !g.Base.Complete {
		return 0, 0
	}
	from, to = g.Base.CreatedTS, g.Base.CreatedTS
	if n := len(g.Segments); n > 0 {
		to = max(to, g.Segments[n-1].TS)
	}
	return from, to
}

// Generations lists the generations at a destination, oldest first.
func Generations(ctx context.Context, s *objectstore.Store) ([]Generation, error) {
	objects, err := s.List(ctx, generationsDir)
	if err != nil {
		return nil, err
	}
	var out []Generation
	for _, o := range objects {
		name, rest, ok := strings.Cut(strings.TrimPrefix(o.Key, generationsDir), "/")
		if !ok {
			continue
		}
		if len(out) == 0 || out[len(out)-1].Name != name {
			out = append(out, Generation{Name: name, Base: Snapshot{Name: name, dir: generationsDir + name + "/base/"}})
		}
		g := &out[len(out)-1]
		switch {
		case rest == "base/manifest.json":
			if err := readManifest(ctx, s, o.Key, &g.Base); err != nil {
				return nil, err
			}
		case strings.HasPrefix(rest, "wal/"):
			seq, ts, _ := strings.Cut(strings.TrimPrefix(rest, "wal/"), "-")
			n, err1 := strconv.Atoi(seq)
			t, err2 := strconv.ParseInt(ts, 10, 64)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("%s: unexpected object %s", s.Name, o.Key)
			}
			g.Segments = append(g.Segments, Segment{Key: o.Key, Seq: n, TS: t, Size: o.Size})
		}
	}
	for i := range out {
		slices.SortFunc(out[i].Segments, func(a, b Segment) int { return a.Seq - b.Seq })
	}
	return out, nil
}

// PruneGenerations removes from a destination the complete generations
// beyond the newest keep, and what older incomplete ones left.
func PruneGenerations(ctx context.Context, s *objectstore.Store, keep int) error {
	gens, err := Generations(ctx, s)
	if err != nil {
		return err
	}
	complete := 0
	for _, g := range slices.Backward(gens) {
		if g.Base.Complete {
			complete++
		}
		if complete > keep || (complete > 0 && !g.Base.Complete) {
			if err := DeleteGeneration(ctx, s, g.Name); err != nil {
				return err
			}
		}
	}
	return nil
}

// DeleteGeneration removes a generation, its base's manifest first.
func DeleteGeneration(ctx context.Context, s *objectstore.Store, name string) error {
	return deleteWhole(ctx, s, generationsDir+name+"/", "base/manifest.json")
}

// Point is what a restore from a destination starts from: a snapshot, or
// a generation's base and the segments up to the time asked for.
type Point struct {
	Snapshot   *Snapshot
	Generation *Generation
	Segments   []Segment
	TS         int64 // the time it restores the instance to
}

func (p Point) String() string {
	t := time.UnixMilli(p.TS).UTC().Format("2006-01-02T15:04:05.000Z")
	if p.Generation != nil {
		return fmt.Sprintf("generation %s with %d segments, as of %s", p.Generation.Name, len(p.Segments), t)
	}
	return fmt.Sprintf("snapshot %s, as of %s", p.Snapshot.Name, t)
}

// Choose finds the newest state at or before at (any time if zero) among
// a destination's snapshots and generations.
func Choose(ctx context.Context, s *objectstore.Store, at time.Time) (Point, error) {
	snaps, err := Snapshots(ctx, s)
	if err != nil {
		return Point{}, err
	}
	gens, err := Generations(ctx, s)
	if err != nil {
		return Point{}, err
	}
	limit := int64(1<<63 - 1)
	if !at.IsZero() {
		limit = at.UnixMilli()
	}
	var best Point
	found := false
	if sn, err := Pick(snaps, at); err == nil {
		best, found = Point{Snapshot: &sn, TS: sn.CreatedTS}, true
	}
	for i := range gens {
		g := &gens[i]
		if !g.Base.Complete || g.Base.CreatedTS > limit {
			continue
		}
		p := Point{Generation: g, TS: g.Base.CreatedTS}
		for j, seg := range g.Segments {
			if seg.Seq != j || seg.TS > limit {
				break // a segment missing ends what can be applied
			}
			p.Segments, p.TS = g.Segments[:j+1], max(p.TS, seg.TS)
		}
		if !found || p.TS >= best.TS {
			best, found = p, true
		}
	}
	if !found {
		if at.IsZero() {
			return best, errors.New("restore: the destination holds no complete snapshot or generation")
		}
		return best, fmt.Errorf("restore: nothing at the destination restores to a time at or before %s", at.UTC().Format(time.RFC3339))
	}
	return best, nil
}

// RestorePoint restores what Choose found into dataDir, as Restore does,
// applying a generation's segments to its base before the checks.
func RestorePoint(ctx context.Context, s *objectstore.Store, p Point, identities []age.Identity, dataDir string, force bool) (Manifest, error) {
	if p.Generation == nil {
		return Restore(ctx, Fetch(ctx, s, *p.Snapshot), identities, dataDir, force)
	}
	return restoreInto(ctx, dataDir, force, func(tmp string) (Manifest, error) {
		m, err := unpack(Fetch(ctx, s, p.Generation.Base), identities, tmp)
		if err != nil {
			return m, err
		}
		if err := replay(ctx, s, p.Segments, identities, filepath.Join(tmp, dbName)); err != nil {
			return m, fmt.Errorf("restore: generation %s: %w", p.Generation.Name, err)
		}
		if m.MediaMissing, err = fetchMedia(ctx, s, p.Generation.Name, identities, tmp); err != nil {
			return m, fmt.Errorf("restore: generation %s: %w", p.Generation.Name, err)
		}
		m.CreatedTS = p.TS
		return m, nil
	})
}

// replay applies segments, in order, to the database file at path. Each
// continues the frames of the one before it, or starts a WAL anew.
func replay(ctx context.Context, s *objectstore.Store, segs []Segment, identities []age.Identity, path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	var salt1, salt2, last, dbPages, pageSize uint32
	for _, seg := range segs {
		c, err := openSegment(ctx, s, seg, identities)
		if err != nil {
			return err
		}
		next := uint32(1)
		if c.Salt1 == salt1 && c.Salt2 == salt2 {
			next = last + 1
		}
		if c.First != next {
			return fmt.Errorf("segment %d starts at frame %d, not %d: a segment is missing", seg.Seq, c.First, next)
		}
		for pgno, page := range c.Pages {
			if _, err := f.WriteAt(page, int64(pgno-1)*int64(c.PageSize)); err != nil {
				return err
			}
		}
		salt1, salt2, last, dbPages, pageSize = c.Salt1, c.Salt2, c.Last, c.DBPages, c.PageSize
	}
	if dbPages > 0 {
		if err := f.Truncate(int64(dbPages) * int64(pageSize)); err != nil {
			return err
		}
	}
	return f.Sync()
}

// openSegment fetches, decrypts and decodes a segment.
func openSegment(ctx context.Context, s *objectstore.Store, seg Segment, identities []age.Identity) (*walChunk, error) {
	b, err := s.Get(ctx, seg.Key, seg.Size)
	if err != nil {
		return nil, err
	}
	ar, err := age.Decrypt(bytes.NewReader(b), identities...)
	if err != nil {
		var noMatch *age.NoIdentityMatchError
		if errors.As(err, &noMatch) {
			return nil, errors.New("this backup is not encrypted to the given identity")
		}
		return nil, fmt.Errorf("segment %d is damaged: %w", seg.Seq, err)
	}
	zr, err := zstd.NewReader(ar, zstd.WithDecoderConcurrency(1))
	if err != nil {
		return nil, err
	}
	defer zr.Close()
	plain, err := io.ReadAll(io.LimitReader(zr, 1<<32))
	if err != nil {
		return nil, fmt.Errorf("segment %d is damaged or truncated: %w", seg.Seq, err)
	}
	c, err := decodeSegment(plain)
	if err != nil {
		return nil, fmt.Errorf("segment %d: %w", seg.Seq, err)
	}
	return c, nil
}
