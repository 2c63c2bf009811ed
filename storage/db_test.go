package storage

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
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
