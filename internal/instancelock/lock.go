// Package instancelock keeps one server per instance. serve holds an
// exclusive lock on a file beside the database for as long as it runs, and
// the commands that replace or remove the database (restore, destroy) take
// the same lock, so none of them runs under a live server. Commands that
// only read (backup, export, verify) do not take it.
package instancelock

import (
	"fmt"
	"os"
	"strconv"
	"strings"
)

// Lock is a held instance lock; Release lets it go.
type Lock struct{ f *os.File }

// HeldError is the answer when another process holds the lock.
type HeldError struct {
	Database string
	PID      int // 0 if the holder has not written it yet
}

func (e *HeldError) Error() string {
	who := "another redoubt process"
	if e.PID > 0 {
		who = fmt.Sprintf("redoubt process %d", e.PID)
	}
	return fmt.Sprintf("%s is serving %s; stop it first", who, e.Database)
}

// Path is the lock file of a database.
func Path(database string) string { return database + ".lock" }

// Acquire takes the lock of the instance whose database is at database,
// without waiting: if another process holds it, the error is a *HeldError
// naming that process. The lock file stays when the lock is released
// (removing it would race with the next server taking it); destroy
// removes it.
func Acquire(database string) (*Lock, error) {
	f, err := os.OpenFile(Path(database), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	held, err := lock(f)
	if err != nil || held {
		b := make([]byte, 32)
		n, _ := f.ReadAt(b, 0)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("locking %s: %w", Path(database), err)
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
		return nil, &HeldError{Database: database, PID: pid}
	}
	if err := f.Truncate(0); err == nil {
		_, err = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Lock{f: f}, nil
}

// Release lets the lock go (closing the file drops it).
func (l *Lock) Release() error { return l.f.Close() }
