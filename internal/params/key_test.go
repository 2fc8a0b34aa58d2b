package params

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func readFileIfExists(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

func TestKeyFileIsCreatedPrivateAndReused(t *testing.T) {
	t.Setenv(KeyEnv, "")
	dir := t.TempDir()
	k1, err := LoadKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, err := os.Stat(filepath.Join(dir, KeyFile))
	if err != nil || info.Mode().Perm() != 0o600 || info.Size() != KeySize {
		t.Fatalf("key file: %v, %v", info, err)
	}
	k2, err := LoadKey(dir)
	if err != nil || !bytes.Equal(k1, k2) {
		t.Fatalf("second LoadKey returned another key: %v", err)
	}
	if err := os.Chmod(filepath.Join(dir, KeyFile), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key file: %v, want a refusal", err)
	}
	os.Chmod(filepath.Join(dir, KeyFile), 0o600)
	os.WriteFile(filepath.Join(dir, KeyFile), []byte("short"), 0o600)
	if _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), "holds 5 bytes") {
		t.Fatalf("short key file: %v", err)
	}
}

func TestKeyFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	key := bytes.Repeat([]byte{7}, KeySize)
	t.Setenv(KeyEnv, base64.StdEncoding.EncodeToString(key))
	got, err := LoadKey(dir)
	if err != nil || !bytes.Equal(got, key) {
		t.Fatalf("LoadKey = %x, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, KeyFile)); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a key file was created although the key came from %s", KeyEnv)
	}
	t.Setenv(KeyEnv, "not base64!")
	if _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), KeyEnv) {
		t.Fatalf("bad base64: %v", err)
	}
	t.Setenv(KeyEnv, base64.StdEncoding.EncodeToString([]byte("short")))
	if _, err := LoadKey(dir); err == nil || !strings.Contains(err.Error(), "5 bytes") {
		t.Fatalf("short key: %v", err)
	}
}
