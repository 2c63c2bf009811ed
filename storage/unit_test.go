package storage

import (
	"context"
	"errors"
	"testing"
)

// A unit of work is one transaction: writes made inside it join it, all
// are undone if it fails, and what follows its commit runs only after it,
// and only if it committed.
func TestWriteAll(t *testing.T) {
	db := open(t)
	ctx := context.Background()
	add := func(ctx context.Context, id string) error {
		return db.Write(ctx, func(q Q) error { return q.CreateUser(ctx, User{UserID: id, CreatedTS: 1}) })
	}
	exists := func(id string) bool {
		ok, err := db.R().UserExists(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return ok
	}
	var ran []string
	failed := errors.New("the last change failed")
	err := db.WriteAll(ctx, func(ctx context.Context) error {
		if err := add(ctx, "@a:x"); err != nil {
			return err
		}
		AfterCommit(ctx, func() { ran = append(ran, "a") })
		return failed
	})
	if !errors.Is(err, failed) || exists("@a:x") || len(ran) != 0 {
		t.Fatalf("failed unit: %v, kept a write: %v, ran after commit: %v", err, exists("@a:x"), ran)
	}
	err = db.WriteAll(ctx, func(ctx context.Context) error {
		for _, id := range []string{"@b:x", "@c:x"} {
			if err := add(ctx, id); err != nil {
				return err
			}
			AfterCommit(ctx, func() {
				if !exists(id) {
					t.Errorf("%s not committed when its after-commit ran", id)
				}
				ran = append(ran, id)
			})
		}
		return nil
	})
	if err != nil || !exists("@b:x") || !exists("@c:x") || len(ran) != 2 || ran[0] != "@b:x" {
		t.Fatalf("unit: %v, after commit: %v", err, ran)
	}
	// Outside a unit, what follows a commit runs at once.
	AfterCommit(ctx, func() { ran = append(ran, "now") })
	if ran[len(ran)-1] != "now" {
		t.Fatal("AfterCommit outside a unit did not run at once")
	}
}
