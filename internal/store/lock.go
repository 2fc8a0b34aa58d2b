package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// dirLock is an advisory flock on the data directory's lock file. Every open
// store holds it shared, so several processes may read and write the database
// (SQLite coordinates them) while a restore, which needs it exclusive, is
// refused until they have all closed.
type dirLock struct{ f *os.File }

func lockDir(dir string, exclusive bool) (*dirLock, error) {
	path := filepath.Join(dir, lockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening lock file %s: %w", path, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how|syscall.LOCK_NB)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (a bluegreen process has it open)", dir, ErrInUse)
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return &dirLock{f: f}, nil
}

// release drops the lock; closing the descriptor is what releases a flock.
func (l *dirLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
