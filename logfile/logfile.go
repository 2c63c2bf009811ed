// Package logfile is a log file that rotates daily and deletes what is
// older than its maximum age: logs are kept only as long as configured.
package logfile

import (
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

const dayFormat = "2006-01-02"

// Writer writes to path; at the first write of a new day the file is
// renamed to path.YYYY-MM-DD (the day it holds) and a new one started, and
// rotated files older than maxAge are deleted.
type Writer struct {
	path   string
	maxAge time.Duration
	now    func() time.Time

	mu  sync.Mutex
	f   *os.File
	day string // the day the open file holds
}

// Open opens (appending) or creates the log file. A file left from an
// earlier day is rotated first.
func Open(path string, maxAge time.Duration, now func() time.Time) (*Writer, error) {
	w := &Writer{path: path, maxAge: maxAge, now: now}
	if info, err := os.Stat(path); err == nil {
		w.day = info.ModTime().Format(dayFormat)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.rotateIfNewDay(); err != nil {
		return nil, err
	}
	if w.f == nil {
		if err := w.open(); err != nil {
			return nil, err
		}
	}
	return w, nil
}

func (w *Writer) open() error {
	f, err := os.OpenFile(w.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	w.f, w.day = f, w.now().Format(dayFormat)
	return nil
}

// rotateIfNewDay moves yesterday's (or older) file aside, opens today's and
// deletes expired files.
func (w *Writer) rotateIfNewDay() error {
	today := w.now().Format(dayFormat)
	if w.day == "" || w.day == today {
		return nil
	}
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
	if err := os.Rename(w.path, w.path+"."+w.day); err != nil && !os.IsNotExist(err) {
		return err
	}
	w.day = ""
	if err := w.open(); err != nil {
		return err
	}
	w.deleteExpired()
	return nil
}

// deleteExpired removes rotated files whose day is older than maxAge.
func (w *Writer) deleteExpired() {
	old, _ := filepath.Glob(w.path + ".*")
	cutoff := w.now().Add(-w.maxAge)
	for _, f := range old {
		day, err := time.ParseInLocation(dayFormat, strings.TrimPrefix(f, w.path+"."), w.now().Location())
		// A file holds its whole day: it expires when the day's end does.
		if err == nil && day.Add(24*time.Hour).Before(cutoff) {
			os.Remove(f)
		}
	}
}

// Write implements io.Writer.
func (w *Writer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.rotateIfNewDay(); err != nil {
		return 0, err
	}
	return w.f.Write(p)
}

// Close closes the file.
func (w *Writer) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.f.Close()
}
