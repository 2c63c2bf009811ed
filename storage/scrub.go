package storage

import (
	"errors"
	"time"
)

// Scrubbing. secure_delete zeroes what a write removes from the database
// file's pages, but in WAL mode the write goes to the WAL first, and the
// WAL keeps the pages as they were before (the removed content with them)
// until a checkpoint copies it back and the WAL is reset. SQLite's own
// checkpoints come every thousand pages and never reset the WAL, so an
// idle server would keep a redacted message in the -wal file for good.
//
// So a write that removes content (a redaction, an erasure, a retention
// pass, deleted media) asks for a scrub: shortly after it commits, a
// wal_checkpoint(TRUNCATE) copies the WAL into the file and truncates the
// WAL to nothing. Requests arriving meanwhile share that one checkpoint.

const (
	// scrubDelay gathers the removals of a busy moment into one checkpoint.
	scrubDelay = 250 * time.Millisecond
	// scrubWait is how long one attempt lets readers on an older snapshot
	// finish, holding the writer. Kept short: sends wait meanwhile.
	scrubWait = 20 * time.Millisecond
	// scrubRetry is the first pause after readers blocked an attempt; it
	// doubles, up to scrubRetryMax, while a long read (a backup's
	// snapshot, an export) goes on.
	scrubRetry, scrubRetryMax = 25 * time.Millisecond, 2 * time.Second
)

// forgets notes that the write it is part of removes content.
func (q Q) forgets() {
	if q.pc != nil && q.pc.forgets != nil {
		q.pc.forgets()
	}
}

// scrubSoon asks the scrubber for a checkpoint.
func (db *DB) scrubSoon() {
	select {
	case db.scrub <- struct{}{}:
	default: // one is asked for already
	}
}

// scrubber runs the checkpoints asked for until the database closes.
func (db *DB) scrubber() {
	defer close(db.scrubbed)
	pause := func(d time.Duration) bool {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
			return true
		case <-db.closing:
			return false
		}
	}
	for {
		select {
		case <-db.scrub:
		case <-db.closing:
			return
		}
		if !pause(scrubDelay) {
			return
		}
		for retry := scrubRetry; ; retry = min(2*retry, scrubRetryMax) {
			done, err := db.scrubOnce()
			if done || err != nil && !errors.Is(err, ErrCheckpointDeferred) {
				// An error (a full disk) is left to the next request, or
				// to the checkpoint SQLite makes when the database closes;
				// one deferred by a copy of the file is tried again.
				break
			}
			if !pause(retry) {
				return
			}
		}
	}
}

// scrubOnce tries one truncating checkpoint, waiting at most scrubWait for
// readers; done is false if readers kept part of the WAL in use.
func (db *DB) scrubOnce() (done bool, err error) {
	var busy int
	err = db.exclusive(func(p *pconn) error {
		var err error
		busy, err = db.truncate(p, scrubWait)
		return err
	})
	return err == nil && busy == 0, err
}
