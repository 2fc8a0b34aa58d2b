package testregistry

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// script builds the registry, or finds it built, and prints its path. It
// alone knows the registry's version, so setup and tests cannot disagree.
const script = "scripts/build-registry.sh"

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// binary is the path of the registry binary, built by the script when it
// is not cached yet (a few minutes). Done once per test binary.
func binary() (string, error) {
	binaryOnce.Do(func() { binaryPath, binaryErr = findOrBuild() })
	return binaryPath, binaryErr
}

func findOrBuild() (string, error) {
	root, err := moduleRoot()
	if err != nil {
		return "", err
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(filepath.Join(root, script))
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("the container registry is not built and %s could not build it (%v); run ./scripts/setup.sh where the Go module proxy can be reached\n%s",
			script, err, tail(stderr.String(), 30))
	}
	path := strings.TrimSpace(stdout.String())
	if st, err := os.Stat(path); err != nil || st.IsDir() || st.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s printed %q, which is not an executable file", script, path)
	}
	return path, nil
}

// moduleRoot is the checkout's top directory: the first directory above
// the working directory (a test's package directory) that holds the script.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, script)); err == nil {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				return dir, nil
			}
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no " + script + " in the working directory or above it: run the test from inside the bluegreen checkout")
		}
		dir = parent
	}
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
