package storage

import "context"

// A unit of work: several services' writes in one transaction, as an admin
// change of several things with its audit row must be. WriteAll runs fn in
// one write transaction and gives it a context that carries that
// transaction: every DB.Write made with the context joins it instead of
// starting one of its own, and what is to follow a commit (AfterCommit)
// waits for this one. fn must do nothing slow (hash no password): the one
// writer waits for it.

type unitKey struct{}

type unit struct {
	q     Q
	after []func()
}

// WriteAll runs fn as one transaction (see above), then what its writes
// left to follow the commit, in order.
func (db *DB) WriteAll(ctx context.Context, fn func(ctx context.Context) error) error {
	u := &unit{}
	err := db.Write(ctx, func(q Q) error {
		u.q, u.after = q, nil // a retried batch starts over
		return fn(context.WithValue(ctx, unitKey{}, u))
	})
	if err != nil {
		return err
	}
	for _, f := range u.after {
		f()
	}
	return nil
}

// inUnit is the unit of work ctx carries, if any.
func inUnit(ctx context.Context) *unit {
	u, _ := ctx.Value(unitKey{}).(*unit)
	return u
}

// InUnit reports whether writes made with ctx join a unit of work.
func InUnit(ctx context.Context) bool { return inUnit(ctx) != nil }

// AfterCommit runs f once the write made with ctx has committed: at once
// for a write of its own (the caller has just committed), after the unit's
// commit for a write that joined one.
func AfterCommit(ctx context.Context, f func()) {
	if u := inUnit(ctx); u != nil {
		u.after = append(u.after, f)
		return
	}
	f()
}
