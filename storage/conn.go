package storage

import (
	"context"
	"database/sql"
	"errors"
	"time"
)

// pconn is one SQLite connection with the statements prepared on it. It is
// used by one goroutine at a time: the writer under its mutex, a reader
// while it holds the connection from the pool.
type pconn struct {
	conn  *sql.Conn
	stmts map[string]*sql.Stmt
	// uncancellable is set on the write connection: its statements run
	// even for a cancelled context. A transaction there holds a batch of
	// other requests' writes, and a write must not be left half done
	// because one client went away. On a reader a cancelled request stops
	// before its next statement (statement).
	uncancellable bool
	// forgets, set on the write connection, is called by writes that
	// remove content (see scrub.go).
	forgets func()
	// open: a reader's read transaction is kept open, begun when the
	// WAL-index header was at (keep.go).
	open bool
	at   walHeader
	gen  uint64 // DB.checkpoints when it began
	// checked is the state ReadPositioned found the kept snapshot to be,
	// with its sync_epoch.
	checked      *positionsAt
	checkedEpoch int64
	// failed: a statement failed in the kept transaction.
	failed bool
}

func newPconn(ctx context.Context, db *sql.DB) (*pconn, error) {
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	return &pconn{conn: c, stmts: map[string]*sql.Stmt{}}, nil
}

// stmt returns the statement for a query, preparing it on first use:
// parsing SQL costs more than running most of these queries.
func (p *pconn) stmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st := p.stmts[query]; st != nil {
		return st, nil
	}
	st, err := p.conn.PrepareContext(ctx, query)
	if err != nil {
		return nil, err
	}
	p.stmts[query] = st
	return st, nil
}

func (p *pconn) close() {
	for _, st := range p.stmts {
		st.Close()
	}
	p.conn.Close()
}

// tx runs fn between begin and COMMIT, or ROLLBACK if it fails or panics.
// The end of the transaction does not use ctx: a cancelled request must
// still roll back, or the connection would stay inside its transaction
// (and, back in the pool, hold its snapshot and refuse every later BEGIN).
func (p *pconn) tx(ctx context.Context, begin string, fn func(Q) error) error {
	ctx, err := p.statement(ctx, false)
	if err != nil {
		return err
	}
	if _, err := p.conn.ExecContext(ctx, begin); err != nil {
		return err
	}
	committed := false
	defer func() { // also when fn panics
		if !committed {
			_, _ = p.conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	if err := fn(Q{pc: p}); err != nil {
		return err
	}
	if _, err := p.conn.ExecContext(context.Background(), "COMMIT"); err != nil {
		return err
	}
	committed = true
	return nil
}

// reader takes a read connection from the pool. Its kept transaction, if
// any, is ended unless its snapshot is the database as it is now.
func (db *DB) reader(ctx context.Context) (*pconn, error) {
	p, err := db.take(ctx)
	if err == nil {
		db.refresh(p)
	}
	return p, err
}

// take takes a read connection from the pool as it is.
func (db *DB) take(ctx context.Context) (*pconn, error) {
	select {
	case p := <-db.readers:
		return p, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// release gives a reader back to the pool, with its transaction kept
// unless a checkpoint is waiting for the readers or came since it began
// (a snapshot in use meanwhile would stop the WAL from starting over), or
// a statement failed (SQLite may have ended the transaction itself). A
// kept transaction is ended by the next sweep if nothing takes the reader
// before (keep.go).
func (db *DB) release(p *pconn) {
	db.keepMu.RLock()
	if p.open && !db.keepable(p) {
		p.end()
	}
	kept := p.open
	db.readers <- p
	db.keepMu.RUnlock()
	if kept && !db.sweeping.Swap(true) {
		time.AfterFunc(keepFor, db.sweep)
	}
}

// Rows is *sql.Rows that, outside a transaction, gives its connection back
// to the pool when closed.
type Rows struct {
	*sql.Rows
	pc      *pconn
	release func()
}

// Close closes the rows and releases their connection.
func (r *Rows) Close() error {
	err := r.Rows.Close()
	if err != nil || r.Rows.Err() != nil {
		r.pc.failed = true
	}
	if r.release != nil {
		r.release()
		r.release = nil
	}
	return err
}

// statement gives the context a statement on p runs with: one that cannot
// be cancelled, unless the query is interruptible. For a context that can
// be, the driver starts a goroutine per statement to interrupt SQLite, and
// database/sql another per result set to close it: about 5 µs of a key
// lookup. So a statement runs to its end, and a reader's request that is
// cancelled stops before its next one.
func (p *pconn) statement(ctx context.Context, interruptible bool) (context.Context, error) {
	if p.uncancellable {
		return context.WithoutCancel(ctx), nil
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if interruptible {
		return ctx, nil
	}
	return context.WithoutCancel(ctx), nil
}

// interruptible is q for statements whose work no LIMIT bounds (a
// full-text search counts every match): a cancelled request interrupts
// them mid-way, so that clients that go away cannot hold the readers.
func (q Q) interruptible() Q {
	q.interrupts = true
	return q
}

func (q Q) query(ctx context.Context, query string, args ...any) (*Rows, error) {
	p, release, err := q.conn(ctx)
	if err != nil {
		return nil, err
	}
	if ctx, err = p.statement(ctx, q.interrupts); err != nil {
		release()
		return nil, err
	}
	st, err := p.stmt(ctx, query)
	if err != nil {
		release()
		return nil, err
	}
	rows, err := st.QueryContext(ctx, args...)
	if err != nil {
		p.failed = true
		release()
		return nil, err
	}
	return &Rows{Rows: rows, pc: p, release: release}, nil
}

func (q Q) exec(ctx context.Context, query string, args ...any) (sql.Result, error) {
	p, release, err := q.conn(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	if ctx, err = p.statement(ctx, q.interrupts); err != nil {
		return nil, err
	}
	st, err := p.stmt(ctx, query)
	if err != nil {
		return nil, err
	}
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		p.failed = true
	}
	return res, err
}

// row is a single-row result whose Scan releases the connection.
type row struct {
	rows *Rows
	err  error
}

func (r row) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	defer r.rows.Close()
	if !r.rows.Next() {
		if err := r.rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := r.rows.Scan(dest...); err != nil {
		return err
	}
	return r.rows.Close()
}

func (q Q) queryRow(ctx context.Context, query string, args ...any) row {
	rows, err := q.query(ctx, query, args...)
	return row{rows: rows, err: err}
}

// conn is the transaction's connection, or a reader from the pool for a
// query outside any transaction.
func (q Q) conn(ctx context.Context) (*pconn, func(), error) {
	if q.pc != nil {
		return q.pc, func() {}, nil
	}
	if q.db == nil {
		return nil, nil, errors.New("storage: query on a zero Q")
	}
	p, err := q.db.reader(ctx)
	if err != nil {
		return nil, nil, err
	}
	return p, func() { q.db.release(p) }, nil
}
