//go:build unix

package instancelock

import (
	"errors"
	"os"
	"syscall"
)

// lock takes an exclusive flock on f without waiting; held reports that
// another open file holds it. flock locks belong to the open file, so two
// servers in one process exclude each other too, and the kernel drops the
// lock when the process dies, even by kill -9.
func lock(f *os.File) (held bool, err error) {
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
	if errors.Is(err, syscall.EWOULDBLOCK) {
		return true, nil
	}
	return false, err
}
