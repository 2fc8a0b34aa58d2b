package server

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestDataDirLockNamesTheHolder(t *testing.T) {
	dir := t.TempDir()
	first, err := lockDataDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := json.Marshal(Info{API: "127.0.0.1:7070", PID: 4242})
	if err := os.WriteFile(filepath.Join(dir, infoFile), info, 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = lockDataDir(dir)
	if !errors.Is(err, ErrDataDirInUse) || !strings.Contains(err.Error(), "pid 4242, API http://127.0.0.1:7070") {
		t.Fatalf("second lock: %v", err)
	}
	first.Close()
	again, err := lockDataDir(dir)
	if err != nil {
		t.Fatalf("after the holder let go: %v", err)
	}
	again.Close()
}
