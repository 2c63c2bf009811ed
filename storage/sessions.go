package storage

import (
	"context"
	"database/sql"
	"errors"
	"sync"
)

// authEpochKey, in instance_state, moves whenever a stored session could
// change: triggers move it (migration 025), so every writer does.
const authEpochKey = "auth_epoch"

// maxSessions bounds the sessions kept in memory: past it they are all
// dropped and read again as they are used.
const maxSessions = 16384

// sessions keeps what access tokens authenticated, all read at one
// auth_epoch. A token's session is the same for as long as the epoch does
// not move, so a request reads the epoch, one row, instead of its token,
// device and user: after a commit (which empties a reader's page cache)
// that is about 30 µs against 60 (BenchmarkSession).
type sessions struct {
	mu    sync.Mutex
	epoch int64
	byKey map[string]Session
}

// get returns the session read at epoch, if kept.
func (c *sessions) get(hash []byte, epoch int64) (Session, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	s, ok := c.byKey[string(hash)]
	return s, ok && c.epoch == epoch
}

// put keeps a session read at epoch, dropping every session read at
// another.
func (c *sessions) put(hash []byte, epoch int64, s Session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if epoch != c.epoch || c.byKey == nil || len(c.byKey) >= maxSessions {
		c.epoch, c.byKey = epoch, map[string]Session{}
	}
	c.byKey[string(hash)] = s
}

// forget drops a session, so that the next request reads it afresh.
func (c *sessions) forget(hash []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.byKey, string(hash))
}

// Session is SessionByToken for every request: from memory while
// auth_epoch has not moved since the session was read. The counter and
// the session are read in one snapshot.
func (db *DB) Session(ctx context.Context, hash []byte) (Session, error) {
	var s Session
	err := db.Read(ctx, func(q Q) error {
		epoch, err := q.authEpoch(ctx)
		if err != nil {
			return err
		}
		if kept, ok := db.sessions.get(hash, epoch); ok {
			s = kept
			return nil
		}
		if s, err = q.SessionByToken(ctx, hash); err != nil {
			return err
		}
		if epoch >= 0 {
			db.sessions.put(hash, epoch, s)
		}
		return nil
	})
	return s, err
}

// SessionTouched forgets a kept session once TouchDevice has committed
// its last use (which changes every minute, so it does not move the
// epoch): the next request reads what was committed, whichever of two
// concurrent touches committed last.
func (db *DB) SessionTouched(hash []byte) { db.sessions.forget(hash) }

// authEpoch reads auth_epoch with InstanceState's statement; -1 if its
// row is missing (InstanceState would say 0, a value the cache may hold),
// which keeps nothing.
func (q Q) authEpoch(ctx context.Context) (int64, error) {
	var v int64
	err := q.queryRow(ctx, instanceStateQuery, authEpochKey).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return -1, nil
	}
	return v, err
}
