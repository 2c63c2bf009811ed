// Package shred deletes files so that their contents do not stay readable
// in the file system's free blocks: overwritten with zeros, synced, then
// unlinked. (On copy-on-write or flash storage the old blocks may survive
// anyway; for those, encrypt the volume.)
package shred

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
)

// File overwrites and removes one file, returning its size. A file that
// does not exist is not an error.
func File(path string) (int64, error) {
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	zeros := make([]byte, 64<<10)
	for left := info.Size(); left > 0 && err == nil; {
		n := min(left, int64(len(zeros)))
		_, err = f.Write(zeros[:n])
		left -= n
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return info.Size(), os.Remove(path)
}

// Tree shreds every file under dir and removes the directories, calling
// report for each file removed.
func Tree(dir string, report func(path string, size int64)) error {
	var dirs []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			dirs = append(dirs, path)
			return nil
		}
		n, err := File(path)
		if err == nil {
			report(path, n)
		}
		return err
	})
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	for i := len(dirs) - 1; i >= 0; i-- {
		if err := os.Remove(dirs[i]); err != nil {
			return err
		}
	}
	return nil
}
