package storage

import "context"

// View is one consumer's window on the database. T is an interface the
// consumer declares with the queries it uses, and Q implements it: a
// reader sees what a package reaches in its own file, not Q's every method.
// Reads run on the pool, writes on the one writer (joining a unit of work
// as DB.Write does).
type View[T any] struct{ DB *DB }

// R queries the read pool through T.
func (v View[T]) R() T { return as[T](v.DB.R()) }

// Read runs fn in one read transaction, through T.
func (v View[T]) Read(ctx context.Context, fn func(T) error) error {
	return v.DB.Read(ctx, func(q Q) error { return fn(as[T](q)) })
}

// ReadPositioned is DB.ReadPositioned through T.
func (v View[T]) ReadPositioned(ctx context.Context, fn func(T, Positions) error) error {
	return v.DB.ReadPositioned(ctx, func(q Q, pos Positions) error { return fn(as[T](q), pos) })
}

// Write runs fn in a write transaction, through T.
func (v View[T]) Write(ctx context.Context, fn func(T) error) error {
	return v.DB.Write(ctx, func(q Q) error { return fn(as[T](q)) })
}

// as gives q as T. A T that Q does not implement is a programming error
// its consumer's compile-time check (var _ T = storage.Q{}) rules out.
func as[T any](q Q) T { return any(q).(T) }

// WriteAll runs a unit of work (DB.WriteAll): every write inside it, this
// consumer's and the services' it calls, is one transaction.
func (v View[T]) WriteAll(ctx context.Context, fn func(ctx context.Context) error) error {
	return v.DB.WriteAll(ctx, fn)
}
