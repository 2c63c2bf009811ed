package storage

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T) *DB {
	t.Helper()
	db, err := Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// Every connection, writer and readers alike, gets the pragmas.
func TestPragmas(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	check := func(who string, q Q) {
		for pragma, want := range map[string]string{"journal_mode": "wal", "foreign_keys": "1", "secure_delete": "1", "busy_timeout": "10000"} {
			var got string
			if err := q.queryRow(ctx, "PRAGMA "+pragma).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Errorf("%s: %s = %s, want %s", who, pragma, got, want)
			}
		}
	}
	check("reader", db.R())
	if err := db.Write(ctx, func(q Q) error { check("writer", q); return nil }); err != nil {
		t.Fatal(err)
	}
	// Readers cannot write.
	if _, err := db.R().exec(ctx, "INSERT INTO stream_positions(stream, pos) VALUES('x', 1)"); err == nil {
		t.Fatal("a reader wrote")
	}
}

func TestMigrationsAreIdempotent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "t.db")
	for range 2 {
		db, err := Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		v, err := db.SchemaVersion(context.Background())
		if err != nil || v < 1 {
			t.Fatalf("schema version %d %v", v, err)
		}
		db.Close()
	}
}

func TestWriteRollsBack(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	boom := errors.New("boom")
	err := db.Write(ctx, func(q Q) error {
		if err := q.CreateUser(ctx, User{UserID: "@a:x", CreatedTS: 1}); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatal(err)
	}
	if ok, _ := db.R().UserExists(ctx, "@a:x"); ok {
		t.Fatal("rolled-back write is visible")
	}
	if err := db.Write(ctx, func(q Q) error { return q.CreateUser(ctx, User{UserID: "@a:x", CreatedTS: 1}) }); err != nil {
		t.Fatal(err)
	}
	err = db.Write(ctx, func(q Q) error { return q.CreateUser(ctx, User{UserID: "@a:x", CreatedTS: 1}) })
	if !errors.Is(err, ErrConflict) {
		t.Fatalf("duplicate user: %v", err)
	}
	if _, err := db.R().User(ctx, "@b:x"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

// Concurrent writers are serialised by the one write connection: stream
// positions handed out under contention are unique and gapless.
func TestConcurrentStreamPositions(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	const goroutines, each = 20, 50
	var mu sync.Mutex
	seen := map[int64]bool{}
	var wg sync.WaitGroup
	for range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range each {
				var pos int64
				err := db.Write(ctx, func(q Q) error {
					var err error
					pos, err = q.nextPos(ctx, "test")
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				if seen[pos] {
					t.Errorf("position %d handed out twice", pos)
				}
				seen[pos] = true
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(seen) != goroutines*each {
		t.Fatalf("%d positions", len(seen))
	}
	if last, _ := db.R().StreamPos(ctx, "test"); last != goroutines*each {
		t.Fatalf("last position %d", last)
	}
}

// Writes that arrive together share a transaction, yet each succeeds or
// fails alone: a failing, panicking or cancelled write leaves nothing
// behind and takes nothing of the others with it.
func TestGroupCommitIsolatesWrites(t *testing.T) {
	db := open(t)
	boom := errors.New("boom")
	const goroutines, each = 32, 30
	var wg sync.WaitGroup
	var mu sync.Mutex
	want := map[string]bool{} // user ID -> must exist
	for g := range goroutines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				id := fmt.Sprintf("@u%d-%d:x", g, i)
				ctx := context.Background()
				kind := (g + i) % 4
				if kind == 3 {
					c, cancel := context.WithCancel(ctx)
					cancel()
					ctx = c
				}
				var err error
				func() {
					defer func() {
						if v := recover(); v != nil {
							err = fmt.Errorf("panic: %v", v)
						}
					}()
					err = db.Write(ctx, func(q Q) error {
						if err := q.CreateUser(context.Background(), User{UserID: id, CreatedTS: 1}); err != nil {
							return err
						}
						switch kind {
						case 1:
							return boom
						case 2:
							panic("write panicked on purpose")
						}
						return nil
					})
				}()
				mu.Lock()
				want[id] = err == nil
				mu.Unlock()
				if (err == nil) != (kind == 0) {
					t.Errorf("%s (kind %d): %v", id, kind, err)
				}
			}
		}()
	}
	wg.Wait()
	for id, exists := range want {
		if ok, err := db.R().UserExists(context.Background(), id); err != nil || ok != exists {
			t.Errorf("%s exists=%v, want %v (%v)", id, ok, exists, err)
		}
	}
	if db.shared.Load() == 0 {
		t.Error("no two writes ever shared a transaction")
	}
}

// Read transactions that always overlap, as messages built from snapshots
// make them, keep every passive checkpoint from completing; the writer
// restarts the WAL once it is past its limit, so it stays bounded.
func TestWALStaysBoundedUnderReaders(t *testing.T) {
	db := open(t)
	db.walLimit = 1 << 20
	ctx := context.Background()
	if err := db.Write(ctx, func(q Q) error { return q.CreateUser(ctx, User{UserID: "@a:x", CreatedTS: 1}) }); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				_ = db.Read(ctx, func(q Q) error {
					_, err := q.AccountData(ctx, "@a:x", "", "blob")
					time.Sleep(time.Millisecond)
					return err
				})
			}
		}()
	}
	blob := []byte(`"` + strings.Repeat("x", 64<<10) + `"`)
	var written int64
	for written < 16*db.walLimit {
		err := db.Write(ctx, func(q Q) error {
			db.lastCheckpoint = time.Time{} // a checkpoint is due after every write
			_, err := q.SetAccountData(ctx, "@a:x", "", "blob", blob)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		written += int64(len(blob))
	}
	close(stop)
	wg.Wait()
	fi, err := os.Stat(db.WALPath())
	if err != nil {
		t.Fatal(err)
	}
	if fi.Size() > 2*db.walLimit {
		t.Fatalf("WAL %d bytes after %d written, want at most %d", fi.Size(), written, 2*db.walLimit)
	}
}

// Positions kept between write transactions are those of the snapshot
// they come with, exactly, while writes commit all along.
func TestReadPositioned(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	if err := db.Write(ctx, func(q Q) error { return q.CreateUser(ctx, User{UserID: "@a:x", CreatedTS: 1}) }); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				var written int64
				err := db.Write(ctx, func(q Q) error {
					var err error
					written, err = q.SetAccountData(ctx, "@a:x", "", fmt.Sprintf("t%d.%d", w, i), []byte(`{}`))
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
				err = db.ReadPositioned(ctx, func(q Q, kept Positions) error {
					if kept.AccountData < written {
						return fmt.Errorf("kept account data position %d behind a returned write's %d", kept.AccountData, written)
					}
					read, err := q.Positions(ctx)
					if err == nil && read != kept {
						err = fmt.Errorf("kept positions %+v, the snapshot's %+v", kept, read)
					}
					return err
				})
				if err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}

// A read that panics (the server recovers a handler's panic and goes on)
// leaves its connection out of its transaction: every later read works,
// whichever pooled connection it gets.
func TestReadPanicRollsBack(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	for range 2 * readConns {
		func() {
			defer func() { _ = recover() }()
			_ = db.Read(ctx, func(q Q) error {
				if _, err := q.UserExists(ctx, "@a:x"); err != nil {
					return err
				}
				panic("a handler's bug")
			})
		}()
	}
	for range 4 * readConns {
		if err := db.Read(ctx, func(q Q) error { _, err := q.UserExists(ctx, "@a:x"); return err }); err != nil {
			t.Fatal(err)
		}
	}
}
