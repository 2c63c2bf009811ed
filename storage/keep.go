package storage

import (
	"context"
	"encoding/binary"
	"os"
	"time"
)

// Kept read transactions. Beginning a read transaction and ending it costs
// about as much as a small read (BEGIN, SQLite's read lock on the WAL,
// COMMIT), and a message wakes hundreds of /syncs that each begin one to
// read the same state. So a reader's transaction is kept open when it is
// given back to the pool, as long as its snapshot is the database as it
// is: the next Read on that connection uses it as it is, without BEGIN.
//
// Whether the database is still as it was is read from the WAL-index
// header at the start of the -shm file (sqlite.org/walformat.html), which
// every commit rewrites, by any process: its frame count, checksums and
// salts. A snapshot is kept with the header read before it began; it is
// used again only while the header is the same, and ended (COMMIT) by the
// first use that finds the header changed. A header that cannot be read,
// or that is being written (its two copies differ), keeps nothing.
//
// A kept snapshot holds its place in the WAL: no checkpoint, this
// process's or another's, can copy the frames committed after it, nor
// start the WAL over. So a reader keeps its snapshot only while it is idle
// for less than keepFor (a sweep ends the rest); checkpoints end the kept
// snapshots of the idle readers and keep none until they are done, and a
// snapshot in use while one ran is not kept after it; and the writer
// makes the checkpoint SQLite's own could not (checkpointDue).

// keepFor is how long an idle reader may keep its snapshot: a message's
// wake-ups take a few to a hundred milliseconds, and an idle server holds
// no snapshot after it.
const keepFor = 50 * time.Millisecond

// walHeaderSize is the WAL-index header: two copies of 48 bytes.
const walHeaderSize = 96

// walIndexVersion is the header's iVersion, in native byte order, for the
// format this reading assumes.
const walIndexVersion = 3007000

type walHeader [walHeaderSize / 2]byte

// openSHM opens the -shm file for reading headers; without it nothing is
// kept.
func (db *DB) openSHM() {
	if f, err := os.Open(db.path + "-shm"); err == nil {
		db.shm = f
	}
}

// walIndex reads the WAL-index header and the checkpoint's progress, the
// frames it has copied (nBackfill, the word after the header).
func (db *DB) walIndex() (h walHeader, backfilled uint32, ok bool) {
	if db.shm == nil {
		return h, 0, false
	}
	var b [walHeaderSize + 4]byte
	if _, err := db.shm.ReadAt(b[:], 0); err != nil {
		return h, 0, false
	}
	first, second := b[:walHeaderSize/2], b[walHeaderSize/2:walHeaderSize]
	if string(first) != string(second) || binary.NativeEndian.Uint32(first) != walIndexVersion || first[12] != 1 {
		return h, 0, false
	}
	return walHeader(first), binary.NativeEndian.Uint32(b[walHeaderSize:]), true
}

// checkpointDue reports whether the WAL holds autoCheckpointFrames frames
// or more, not all of them copied into the database: when SQLite's own
// checkpoint, which the commit made, could not copy what kept snapshots
// still read.
func (db *DB) checkpointDue() bool {
	h, backfilled, ok := db.walIndex()
	frames := binary.NativeEndian.Uint32(h[16:]) // mxFrame
	return ok && frames >= autoCheckpointFrames && backfilled < frames
}

// autoCheckpointFrames is SQLite's default wal_autocheckpoint.
const autoCheckpointFrames = 1000

// keepable reports whether p's transaction may stay kept: no statement
// failed in it, no checkpoint is waiting for the readers, and none came
// since it began.
func (db *DB) keepable(p *pconn) bool {
	return !p.failed && db.keepOff.Load() == 0 && p.gen == db.checkpoints.Load()
}

// current reports whether p's kept snapshot is the database as it is.
func (db *DB) current(p *pconn) bool {
	h, _, ok := db.walIndex()
	return ok && h == p.at && db.keepable(p)
}

// refresh ends p's kept transaction unless its snapshot is current.
func (db *DB) refresh(p *pconn) {
	if p.open && !db.current(p) {
		p.end()
	}
}

// readAfter runs fn in one read transaction, kept (readKept). before, if set,
// is called once the reader is taken, before its snapshot is found to be
// current or begun.
func (db *DB) readAfter(ctx context.Context, before func(), fn func(Q) error) error {
	p, err := db.take(ctx)
	if err != nil {
		return err
	}
	defer db.release(p)
	if before != nil {
		before()
	}
	db.refresh(p)
	return db.readKept(ctx, p, fn)
}

// readKept runs fn in p's transaction, beginning one if p has none kept,
// and keeps it open if it succeeds (release decides whether it stays so).
func (db *DB) readKept(ctx context.Context, p *pconn, fn func(Q) error) error {
	if _, err := p.statement(ctx, false); err != nil {
		return err
	}
	if !p.open {
		gen := db.checkpoints.Load()
		at, _, ok := db.walIndex()
		if !ok || db.keepOff.Load() != 0 {
			return p.tx(ctx, "BEGIN", fn)
		}
		if _, err := p.conn.ExecContext(context.WithoutCancel(ctx), "BEGIN"); err != nil {
			return err
		}
		p.open, p.at, p.gen, p.failed = true, at, gen, false
	}
	ok := false
	defer func() { // also when fn panics
		if !ok {
			p.end()
		}
	}()
	if err := fn(Q{pc: p}); err != nil {
		return err
	}
	ok = true
	return nil
}

// end ends p's kept transaction.
func (p *pconn) end() {
	if !p.open {
		return
	}
	p.open, p.checked, p.failed = false, nil, false
	if _, err := p.conn.ExecContext(context.Background(), "COMMIT"); err != nil {
		_, _ = p.conn.ExecContext(context.Background(), "ROLLBACK")
	}
}

// sweep ends the snapshots kept by idle readers; release arms it.
func (db *DB) sweep() {
	db.sweeping.Store(false)
	db.endKept()
}

// endKept ends the kept transactions of the readers in the pool. Readers
// being given back wait for it, so that none slips into the pool behind
// it with a snapshot kept while keepOff is set.
func (db *DB) endKept() {
	db.keepMu.Lock()
	defer db.keepMu.Unlock()
	var idle []*pconn
take:
	for len(idle) < readConns {
		select {
		case p := <-db.readers:
			idle = append(idle, p)
		default:
			break take
		}
	}
	for _, p := range idle {
		p.end()
		db.readers <- p
	}
}
