package params

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// KeySize is the AES-256 key length.
const KeySize = 32

// KeyFile is the key's file name in the data directory.
const KeyFile = "params.key"

// KeyEnv, when set, holds the key as base64 and takes precedence over the
// file, for hosts where the data directory is not trusted with the key.
const KeyEnv = "BLUEGREEN_PARAMS_KEY"

// LoadKey returns the key from $BLUEGREEN_PARAMS_KEY, or from dataDir's
// params.key, creating the file (mode 0600, 32 random bytes) if absent.
func LoadKey(dataDir string) ([]byte, error) {
	if enc := strings.TrimSpace(os.Getenv(KeyEnv)); enc != "" {
		key, err := base64.StdEncoding.DecodeString(enc)
		if err != nil {
			return nil, fmt.Errorf("%s: not valid base64: %w", KeyEnv, err)
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("%s: key is %d bytes, want %d", KeyEnv, len(key), KeySize)
		}
		return key, nil
	}
	path := filepath.Join(dataDir, KeyFile)
	key, err := readKeyFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if err := createKeyFile(path); err != nil && !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// Read back even after creating: if another process won the race,
		// its key is the one in use.
		key, err = readKeyFile(path)
	}
	return key, err
}

func readKeyFile(path string) ([]byte, error) {
	info, err := os.Stat(path)
	if err != nil {
		return nil, err
	}
	if perm := info.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("key file %s has mode %04o: others can read it; run chmod 600 %s", path, perm, path)
	}
	key, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading key file: %w", err)
	}
	if len(key) != KeySize {
		return nil, fmt.Errorf("key file %s holds %d bytes, want %d", path, len(key), KeySize)
	}
	return key, nil
}

// createKeyFile writes a new key with O_EXCL, so two processes starting at
// once cannot each write their own, and fsyncs it before anything is
// encrypted with it: losing the key loses every secure value.
func createKeyFile(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("creating key directory: %w", err)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return fmt.Errorf("generating key: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("creating key file: %w", err)
	}
	_, werr := f.Write(key)
	serr := f.Sync()
	cerr := f.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(path)
		return fmt.Errorf("writing key file %s: %w", path, err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}
