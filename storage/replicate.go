package storage

import (
	"context"
	"database/sql"
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// Continuous replication (backup's replicator) reads committed frames from
// the WAL file itself, as Litestream does. Two things keep a frame in the
// WAL until it has been read:
//
//   - a read transaction the replicator holds (WALHold): no checkpoint,
//     this process's or another's, copies frames newer than its snapshot
//     into the file, and none resets the WAL while it is open;
//   - SQLite's automatic checkpoints are off on the writer, which makes
//     its own every checkpointEvery while writes go on; every checkpoint
//     this process makes (those, the scrubber's, Checkpoint) first calls
//     the hook, with the writer held, which reads what is left of the WAL
//     and lets go of the hold.

// CheckpointHook is told of this process's checkpoints. Before runs with
// the writer held, before the checkpoint; false defers the checkpoint.
// After runs once it is done (or deferred), still holding the writer.
type CheckpointHook struct {
	Before func() bool
	After  func()
}

// ErrCheckpointDeferred is returned by Checkpoint when the hook deferred it.
var ErrCheckpointDeferred = errors.New("storage: checkpoint deferred while the database is being copied")

// Replicate installs the hook and turns automatic checkpoints off (nil:
// removes it and turns them on again).
func (db *DB) Replicate(hook *CheckpointHook) error {
	pages := "0"
	if hook == nil {
		pages = "1000" // SQLite's default
	}
	return db.exclusive(func(p *pconn) error {
		db.hook.Store(hook)
		_, err := p.conn.ExecContext(context.Background(), "PRAGMA wal_autocheckpoint = "+pages)
		return err
	})
}

// checkpointEvery is how often, while writes go on, the writer makes a
// passive checkpoint when a hook has turned SQLite's own off: often, so
// that each is short and the WAL stays small.
const checkpointEvery = 250 * time.Millisecond

// walRestartBytes is the WAL size past which the writer restarts the WAL
// rather than leave it to SQLite. SQLite's automatic checkpoint is
// passive: it copies only frames older than every open read transaction,
// and the WAL starts over from its beginning only once a checkpoint has
// copied all of it. Messages are built from read snapshots, many at once,
// so under steady sends some snapshot is always open, no checkpoint
// completes and the WAL grows without bound (37 MB after the load tool's
// send scenario, where it stays under 8 MB otherwise).
const walRestartBytes = 16 << 20

// restartWait bounds how long a restarting checkpoint waits for the read
// transactions open when it began (a message's snapshot lasts under a
// millisecond; an export's is left to finish).
const restartWait = 20 * time.Millisecond

// afterBatch checkpoints after a write batch (the writer held) when one is
// due: when SQLite's own left frames behind that kept snapshots held (only
// a checkpoint here ends them first), every checkpointEvery when a hook
// has turned SQLite's own off, and a restart once the WAL has grown past
// walRestartBytes.
func (db *DB) afterBatch() {
	if db.hook.Load() == nil && db.checkpointDue() {
		_, _ = db.checkpoint(db.writer, "PASSIVE")
	}
	if time.Since(db.lastCheckpoint) < checkpointEvery {
		return
	}
	db.lastCheckpoint = time.Now()
	fi, err := os.Stat(db.WALPath())
	if err == nil && fi.Size() > db.walLimit {
		_, _ = db.truncate(db.writer, restartWait)
		return
	}
	if db.hook.Load() != nil {
		_, _ = db.checkpoint(db.writer, "PASSIVE") // deferred or failed: the next batch tries again
	}
}

// truncate checkpoints the whole WAL and truncates it, so that the next
// write starts it over, waiting at most wait for readers.
func (db *DB) truncate(p *pconn, wait time.Duration) (busy int, err error) {
	ctx := context.Background()
	if _, err := p.conn.ExecContext(ctx, "PRAGMA busy_timeout = "+itoa(wait.Milliseconds())); err != nil {
		return 0, err
	}
	busy, err = db.checkpoint(p, "TRUNCATE")
	if _, rerr := p.conn.ExecContext(ctx, "PRAGMA busy_timeout = "+itoa(busyTimeout.Milliseconds())); err == nil {
		err = rerr
	}
	return busy, err
}

// checkpoint runs a checkpoint on the writer (held by the caller) between
// the hook's calls.
func (db *DB) checkpoint(p *pconn, mode string) (busy int, err error) {
	if hook := db.hook.Load(); hook != nil {
		ok := hook.Before()
		defer hook.After()
		if !ok {
			return 0, ErrCheckpointDeferred
		}
	}
	// Snapshots kept open would hold the WAL's frames (keep.go).
	db.keepOff.Add(1)
	defer db.keepOff.Add(-1)
	defer db.checkpoints.Add(1)
	db.endKept()
	var logPages, ckpt int
	err = p.conn.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint("+mode+")").Scan(&busy, &logPages, &ckpt)
	return busy, err
}

// WALPath is the database's WAL file.
func (db *DB) WALPath() string { return db.path + "-wal" }

// WALHold is a connection of its own that holds a read transaction.
type WALHold struct {
	mu   sync.Mutex
	c    *sql.DB
	conn *sql.Conn
	tx   *sql.Tx
}

// NewWALHold opens a hold's connection; it holds nothing yet.
func (db *DB) NewWALHold(ctx context.Context) (*WALHold, error) {
	c, err := sql.Open("sqlite", dsn(db.path, false))
	if err != nil {
		return nil, err
	}
	c.SetMaxOpenConns(1)
	conn, err := c.Conn(ctx)
	if err != nil {
		c.Close()
		return nil, err
	}
	return &WALHold{c: c, conn: conn}, nil
}

// Hold starts a read transaction (ending the one held before): from now
// on the frames it sees stay in the WAL.
func (h *WALHold) Hold(ctx context.Context) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.release()
	tx, err := h.conn.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	// A transaction reads nothing until its first statement.
	var n int
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_schema").Scan(&n); err != nil {
		tx.Rollback()
		return err
	}
	h.tx = tx
	return nil
}

// Release ends the read transaction, if one is held.
func (h *WALHold) Release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.release()
}

func (h *WALHold) release() {
	if h.tx != nil {
		h.tx.Rollback()
		h.tx = nil
	}
}

// CopyFile copies the database file as it is to w. Under a hold, pages a
// checkpoint writes meanwhile come from frames the hold keeps in the WAL,
// so the copy and those frames make the database whole.
func (db *DB) CopyFile(w io.Writer) (int64, error) {
	f, err := os.Open(db.path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.Copy(w, f)
}

// Close ends the hold and closes its connection.
func (h *WALHold) Close() error {
	h.Release()
	h.conn.Close()
	return h.c.Close()
}
