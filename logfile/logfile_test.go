package logfile

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRotatesDailyAndDeletesOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "redoubt.log")
	now := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	w, err := Open(path, 30*24*time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	// Forty days of logging, one line a day.
	for range 40 {
		if _, err := w.Write([]byte(now.Format(time.DateOnly) + "\n")); err != nil {
			t.Fatal(err)
		}
		now = now.Add(24 * time.Hour)
	}
	w.Close()
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	var names []string
	for _, f := range files {
		names = append(names, filepath.Base(f))
	}
	// Today's file is written at the next write; 2026-12-10 is the last
	// day logged. Kept: the rotated days within 30 days of it.
	if !slices.Contains(names, "redoubt.log") || slices.Contains(names, "redoubt.log.2026-11-01") ||
		!slices.Contains(names, "redoubt.log.2026-12-09") || len(names) > 32 {
		t.Fatalf("files: %v", names)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "redoubt.log.2026-12-01")); string(b) != "2026-12-01\n" {
		t.Fatalf("2026-12-01 holds %q", b)
	}
	// Reopening on a later day rotates the file left behind.
	now = now.Add(48 * time.Hour)
	if err := os.Chtimes(path, now.Add(-48*time.Hour), now.Add(-48*time.Hour)); err != nil {
		t.Fatal(err)
	}
	w, err = Open(path, 30*24*time.Hour, clock)
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := os.Stat(path + "." + now.Add(-48*time.Hour).Format(time.DateOnly)); err != nil {
		t.Fatalf("not rotated on open: %v", err)
	}
}
