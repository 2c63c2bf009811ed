package storage

import (
	"context"
	"fmt"
	"time"
)

// Group commit. Every write goes through the one write connection, and the
// fixed cost of a transaction (BEGIN, writing the WAL frames, COMMIT) is as
// large as a small write itself. So writes that arrive while another batch
// is being written queue up, and whoever takes the connection next runs all
// the queued ones in one transaction: each in its own savepoint, so a
// failing write is undone alone, and all share one COMMIT. Write returns
// only after the transaction holding its write has committed.

// maxBatch bounds a batch, so the first write in it does not wait long.
const maxBatch = 64

type writeReq struct {
	ctx  context.Context
	fn   func(Q) error
	done chan error
}

func (db *DB) writeOne(ctx context.Context, fn func(Q) error) error {
	return db.await(db.enqueue(ctx, fn))
}

// enqueue puts a write at the end of the queue: writes run in the order
// they were queued.
func (db *DB) enqueue(ctx context.Context, fn func(Q) error) *writeReq {
	req := &writeReq{ctx: ctx, fn: fn, done: make(chan error, 1)}
	db.queueMu.Lock()
	db.queue = append(db.queue, req)
	db.queueMu.Unlock()
	return req
}

// await returns a queued write's outcome, writing the queue's next batch
// itself when no other goroutine is.
func (db *DB) await(req *writeReq) error {
	select {
	case err := <-req.done:
		return err
	case db.lead <- struct{}{}:
	}
	// This goroutine holds the connection. A leader before it may have
	// written req already; if not, req is still queued and goes in this batch.
	select {
	case err := <-req.done:
		<-db.lead
		return err
	default:
	}
	db.queueMu.Lock()
	n := min(len(db.queue), maxBatch)
	batch := db.queue[:n:n]
	db.queue = append([]*writeReq(nil), db.queue[n:]...)
	db.queueMu.Unlock()
	db.writeBatch(batch)
	db.afterBatch()
	<-db.lead
	return <-req.done
}

// Queue is Write in two steps: fn joins the queue when Queue returns, and
// the function it returns waits for the outcome. Writes run in the order
// they were queued, so a caller holding a lock of its own can queue under
// it and wait after releasing it, and writes queued under that lock
// commit in the order the lock was taken.
func (db *DB) Queue(ctx context.Context, fn func(Q) error) (wait func() error) {
	if u := inUnit(ctx); u != nil {
		err := fn(u.q)
		return func() error { return err }
	}
	req := db.enqueue(ctx, fn)
	return func() error { return reraise(db.await(req)) }
}

// Write runs fn in a write transaction on the one write connection, possibly
// together with other writes: fn's changes are committed if it returns nil,
// else undone, and in either case Write returns once that is final. A panic
// in fn is raised again in the caller's goroutine. Inside a unit of work
// (WriteAll's context) fn joins its transaction.
func (db *DB) Write(ctx context.Context, fn func(Q) error) error {
	if u := inUnit(ctx); u != nil {
		return fn(u.q) // part of a unit of work (unit.go)
	}
	return reraise(db.writeOne(ctx, fn))
}

// reraise raises again in the caller's goroutine a panic of its write.
func reraise(err error) error {
	if p, ok := err.(*writePanic); ok {
		panic(p.v)
	}
	return err
}

// exclusive runs fn while holding the write connection, outside any batch.
func (db *DB) exclusive(fn func(p *pconn) error) error {
	db.lead <- struct{}{}
	defer func() { <-db.lead }()
	return fn(db.writer)
}

// QueueDepth is how many writes wait for the writer.
func (db *DB) QueueDepth() int {
	db.queueMu.Lock()
	defer db.queueMu.Unlock()
	return len(db.queue)
}

// writeBatch runs a batch of writes in one transaction and answers each.
func (db *DB) writeBatch(batch []*writeReq) {
	if db.OnCommit != nil {
		start := time.Now()
		defer func() { db.OnCommit(time.Since(start), len(batch)) }()
	}
	db.commits.Add(1) // odd: a commit may land (ReadPositioned)
	if len(batch) == 1 {
		r := batch[0]
		err := db.writer.tx(r.ctx, "BEGIN IMMEDIATE", func(q Q) error { return run(r, q) })
		db.commits.Add(1)
		r.done <- err
		return
	}
	db.shared.Add(int64(len(batch)))
	bg := context.Background()
	p := db.writer
	results := make([]error, len(batch))
	err := p.tx(bg, "BEGIN IMMEDIATE", func(q Q) error {
		for i, r := range batch {
			if _, err := p.conn.ExecContext(bg, "SAVEPOINT w"); err != nil {
				return err
			}
			if results[i] = run(r, q); results[i] != nil {
				// Some errors (a full disk, an I/O error) end the whole
				// transaction; then the savepoint is gone and so is the batch.
				if _, err := p.conn.ExecContext(bg, "ROLLBACK TO w"); err != nil {
					return fmt.Errorf("storage: write batch lost after %v: %w", results[i], err)
				}
			}
			if _, err := p.conn.ExecContext(bg, "RELEASE w"); err != nil {
				return err
			}
		}
		return nil
	})
	db.commits.Add(1) // even, before any writer hears of its commit
	for i, r := range batch {
		if err != nil {
			results[i] = err
		}
		r.done <- results[i]
	}
}

// run calls one write's function. A panic is returned to that write's
// caller as an error (and re-raised there), never left to break the batch.
func run(r *writeReq, q Q) (err error) {
	defer func() {
		if v := recover(); v != nil {
			err = &writePanic{v}
		}
	}()
	if err := r.ctx.Err(); err != nil {
		return err
	}
	return r.fn(q)
}

type writePanic struct{ v any }

func (p *writePanic) Error() string { return fmt.Sprint("storage: write panicked: ", p.v) }
