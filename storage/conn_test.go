package storage

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Statements never run with a context that can be cancelled, yet a
// cancelled request stops at its next read, inside a read transaction or
// not, and gives its connection back; the writer finishes what it began.
func TestCancelledRequest(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	for range 2 * readConns { // a leaked connection would block the pool
		if _, err := db.R().InstanceState(cancelled, "k"); !errors.Is(err, context.Canceled) {
			t.Fatalf("read: %v, want canceled", err)
		}
		err := db.Read(cancelled, func(q Q) error { _, err := q.InstanceState(cancelled, "k"); return err })
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("read transaction: %v, want canceled", err)
		}
		during, stop := context.WithCancel(ctx)
		err = db.Read(during, func(q Q) error {
			if _, err := q.InstanceState(during, "k"); err != nil {
				return err
			}
			stop()
			_, err := q.InstanceState(during, "k")
			return err
		})
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled inside a read transaction: %v, want canceled", err)
		}
	}
	during, stop := context.WithCancel(ctx)
	err := db.Write(during, func(q Q) error {
		stop()
		return q.SetInstanceState(during, "k", 7)
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if v, err := db.R().InstanceState(ctx, "k"); err != nil || v != 7 {
		t.Fatalf("after: %d, %v; want 7", v, err)
	}
}

// A statement no LIMIT bounds (interruptible) is interrupted mid-way when
// its request is cancelled: this one would count for hours.
func TestInterruptibleStatement(t *testing.T) {
	db := open(t)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	var n int64
	err := db.R().interruptible().queryRow(ctx, `WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1e12)
		SELECT count(*) FROM c`).Scan(&n)
	if err == nil {
		t.Fatalf("counted %d: not interrupted", n)
	}
	if v, err := db.R().InstanceState(context.Background(), "k"); err != nil || v != 0 { // the pool still serves
		t.Fatalf("after: %d, %v", v, err)
	}
}
