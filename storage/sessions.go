package storage

import (
	"context"
	"database/sql"
	"errors"
)

// authEpochKey, in instance_state, moves whenever a stored session could
// change: triggers move it (migration 025), so every writer does.
const authEpochKey = "auth_epoch"

// The sessions (DB.sessions) are what access tokens authenticated, kept
// at one auth_epoch. A token's session is the same for as long as the
// epoch does not move, so a request reads the epoch, one row, instead of
// its token, device and user: after a commit (which empties a reader's
// page cache) that is about 30 µs against 60 (BenchmarkSession).

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
		s, err = db.sessions.read(string(hash), epoch, func() (Session, error) { return q.SessionByToken(ctx, hash) })
		return err
	})
	return s, err
}

// SessionTouched forgets a kept session once TouchDevice has committed
// its last use (which changes every minute, so it does not move the
// epoch): the next request reads what was committed, whichever of two
// concurrent touches committed last.
func (db *DB) SessionTouched(hash []byte) { db.sessions.forget(string(hash)) }

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
