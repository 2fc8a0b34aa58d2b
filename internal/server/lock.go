package server

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockFile is held, with an exclusive flock, by the one server that runs on
// a data directory. The kernel lets it go when that process ends, however
// it ends, so a killed server never leaves a stale lock behind.
const lockFile = "server.lock"

// ErrDataDirInUse is returned by Run when another server holds the data
// directory.
var ErrDataDirInUse = errors.New("the data directory is in use")

// lockDataDir takes the data directory for this process. The returned file
// must stay open for as long as the server runs.
func lockDataDir(dir string) (*os.File, error) {
	path := filepath.Join(dir, lockFile)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s", ErrDataDirInUse, otherServer(dir))
		}
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	return f, nil
}

// otherServer describes the server that holds dir, as well as its
// server.json tells.
func otherServer(dir string) string {
	in, err := ReadInfo(dir)
	if err != nil || in.PID <= 0 {
		return fmt.Sprintf("another bluegreen server is starting or running on %s; stop it first, or give this one another --data", dir)
	}
	if in.API == "" {
		return fmt.Sprintf("another bluegreen server (pid %d, still starting) runs on %s; stop it first, or give this one another --data", in.PID, dir)
	}
	return fmt.Sprintf("another bluegreen server (pid %d, API http://%s) runs on %s; stop it first, or give this one another --data", in.PID, in.API, dir)
}
