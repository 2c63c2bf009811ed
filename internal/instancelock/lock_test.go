package instancelock

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestAcquire(t *testing.T) {
	db := filepath.Join(t.TempDir(), "redoubt.db")
	first, err := Acquire(db)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Acquire(db)
	var held *HeldError
	if !errors.As(err, &held) || held.PID != os.Getpid() || held.Database != db {
		t.Fatalf("second lock: %v", err)
	}
	if err := first.Release(); err != nil {
		t.Fatal(err)
	}
	again, err := Acquire(db)
	if err != nil {
		t.Fatalf("after release: %v", err)
	}
	again.Release()
}
