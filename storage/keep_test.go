package storage

import (
	"context"
	"database/sql"
	"errors"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// keptReaders counts the readers in the pool whose transaction is kept.
func keptReaders(db *DB) int {
	n := 0
	for range readConns {
		p := <-db.readers
		if p.open {
			n++
		}
		defer func() { db.readers <- p }()
	}
	return n
}

func readCounter(t *testing.T, db *DB, q Q) int64 {
	t.Helper()
	v, err := q.InstanceState(context.Background(), "counter")
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// A kept snapshot is used again only while it is the database as it is:
// after a commit, by this server or by any other connection to the file,
// the next read, in a transaction or not, sees it.
func TestKeptSnapshotSeesEveryCommit(t *testing.T) {
	ctx := context.Background()
	db, path := sessionDB(t, 1)
	other, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	// The counter and sync_epoch, which ReadPositioned's snapshots read.
	const write = `INSERT OR REPLACE INTO instance_state(key, value) VALUES('counter', ?1), ('` + syncEpochKey + `', ?1)`
	for i := range int64(12) {
		var err error
		if i%2 == 0 {
			err = db.Write(ctx, func(q Q) error { _, err := q.exec(ctx, write, i); return err })
		} else {
			_, err = other.Exec(write, i)
		}
		if err != nil {
			t.Fatal(err)
		}
		for range 2 * readConns { // every reader, more than once
			var got int64
			if err := db.Read(ctx, func(q Q) error { got = readCounter(t, db, q); return nil }); err != nil {
				t.Fatal(err)
			}
			if got != i {
				t.Fatalf("after write %d: a snapshot read %d", i, got)
			}
			var epoch int64
			if err := db.ReadPositioned(ctx, func(q Q, _ Positions) error { got, epoch = readCounter(t, db, q), q.syncEpoch; return nil }); err != nil {
				t.Fatal(err)
			}
			if got != i || epoch != i {
				t.Fatalf("after write %d: a positioned snapshot read %d, sync_epoch %d", i, got, epoch)
			}
			if got := readCounter(t, db, db.R()); got != i {
				t.Fatalf("after write %d: a read outside a transaction read %d", i, got)
			}
		}
		if n := keptReaders(db); n == 0 {
			t.Fatalf("after write %d: no snapshot kept", i)
		}
	}
}

// keepAll has every reader take a snapshot at once, so that each keeps one.
func keepAll(t *testing.T, db *DB) {
	t.Helper()
	ctx := context.Background()
	var started, done sync.WaitGroup
	started.Add(readConns)
	for range readConns {
		done.Go(func() {
			err := db.Read(ctx, func(q Q) error {
				_, err := q.InstanceState(ctx, "counter")
				started.Done()
				started.Wait()
				return err
			})
			if err != nil {
				t.Error(err)
			}
		})
	}
	done.Wait()
	if n := keptReaders(db); n != readConns {
		t.Fatalf("%d of %d readers keep a snapshot", n, readConns)
	}
}

// A checkpoint ends the snapshots kept by idle readers: a truncating one
// (a scrub after a redaction) empties the WAL.
func TestCheckpointEndsKeptSnapshots(t *testing.T) {
	ctx := context.Background()
	db, path := sessionDB(t, 1)
	keepAll(t, db)
	if err := db.Write(ctx, func(q Q) error { return q.SetInstanceState(ctx, "counter", 1) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Checkpoint(ctx); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path + "-wal"); err != nil || fi.Size() != 0 {
		t.Fatalf("WAL after the checkpoint: %v, %v", fi.Size(), err)
	}
	if got := readCounter(t, db, db.R()); got != 1 {
		t.Fatalf("read %d after the checkpoint", got)
	}
}

// An idle server holds no snapshot for long: other processes may want to
// checkpoint too.
func TestIdleReadersEndTheirSnapshots(t *testing.T) {
	db, _ := sessionDB(t, 1)
	keepAll(t, db)
	time.Sleep(4 * keepFor)
	if n := keptReaders(db); n != 0 {
		t.Fatalf("%d readers keep a snapshot after %v idle", n, 4*keepFor)
	}
}

// A reader whose statement failed does not keep its transaction: SQLite
// may have ended it.
func TestFailedStatementEndsKeptSnapshot(t *testing.T) {
	ctx := context.Background()
	db, _ := sessionDB(t, 1)
	keepAll(t, db)
	if _, err := db.R().query(ctx, `SELECT json('{')`); err == nil {
		t.Fatal("the statement did not fail")
	}
	err := db.Read(ctx, func(q Q) error {
		if _, err := q.query(ctx, `SELECT json('[')`); err == nil {
			return errors.New("the statement did not fail")
		}
		return nil // the error swallowed, as a lookup may
	})
	if err != nil {
		t.Fatal(err)
	}
	if n := keptReaders(db); n != readConns-2 {
		t.Fatalf("%d readers keep a snapshot after two failed statements", n)
	}
}

// A write acknowledged to its writer is seen by the writer's next read,
// while other readers keep and end snapshots around it (-race).
func TestReadAfterWriteWithKeptSnapshots(t *testing.T) {
	ctx := context.Background()
	db, _ := sessionDB(t, 1)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 { // readers that keep snapshots of every state
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				err := db.ReadPositioned(ctx, func(q Q, _ Positions) error { _, err := q.InstanceState(ctx, "w0"); return err })
				if err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	var writers sync.WaitGroup
	for w := range 4 {
		writers.Go(func() {
			key := string(rune('a'+w)) + "-counter"
			for i := range int64(200) {
				if err := db.Write(ctx, func(q Q) error { return q.SetInstanceState(ctx, key, i) }); err != nil {
					t.Error(err)
					return
				}
				var got int64
				err := db.Read(ctx, func(q Q) (err error) { got, err = q.InstanceState(ctx, key); return err })
				if err != nil || got != i {
					t.Errorf("writer %d wrote %d, then read %d (%v)", w, i, got, err)
					return
				}
			}
		})
	}
	writers.Wait()
	close(stop)
	wg.Wait()
}

// Readers that keep snapshots between commits hold the frames after them
// from SQLite's own checkpoint, which the commit past 1,000 frames makes;
// the writer's, which ends them first, lets the WAL start over as without
// them. Here every reader keeps a snapshot of each commit (the restart
// past walRestartBytes turned off).
func TestKeptSnapshotsLetTheWALStartOver(t *testing.T) {
	ctx := context.Background()
	db, path := sessionDB(t, 1)
	db.walLimit = 1 << 40
	content := []byte(`{"x":"` + strings.Repeat("x", 4000) + `"}`)
	for i := range 3000 {
		err := db.Write(ctx, func(q Q) error {
			_, err := q.SetAccountData(ctx, "@u0:hs", "", "m.test."+strconv.Itoa(i), content)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		for range readConns { // each in turn: the pool is first in, first out
			if err := db.Read(ctx, func(q Q) error { _, err := q.InstanceState(ctx, "counter"); return err }); err != nil {
				t.Fatal(err)
			}
		}
	}
	if n := keptReaders(db); n != readConns {
		t.Fatalf("%d of %d readers keep a snapshot", n, readConns)
	}
	fi, err := os.Stat(path + "-wal")
	if err != nil {
		t.Fatal(err)
	}
	if limit := int64(2 * autoCheckpointFrames * pageSize); fi.Size() > limit {
		t.Fatalf("the WAL grew to %d bytes (more than %d)", fi.Size(), limit)
	}
}

// A snapshot in use while a checkpoint runs is not kept after it: its
// place in the WAL would stop the WAL from starting over.
func TestSnapshotInUseDuringCheckpointIsNotKept(t *testing.T) {
	ctx := context.Background()
	db, _ := sessionDB(t, 1)
	reading, finish, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- db.Read(ctx, func(q Q) error {
			_, err := q.InstanceState(ctx, "counter")
			close(reading)
			<-finish
			return err
		})
	}()
	<-reading
	err := db.exclusive(func(p *pconn) error { _, err := db.checkpoint(p, "PASSIVE"); return err })
	if err != nil {
		t.Fatal(err)
	}
	close(finish)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n := keptReaders(db); n != 0 {
		t.Fatalf("%d readers keep a snapshot begun before the checkpoint", n)
	}
}
