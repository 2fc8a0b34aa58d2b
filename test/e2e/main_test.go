// Package e2e runs bluegreen as a user would: the real binary as its own
// process, real backends, and load from a separate process.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// bin holds the binaries built once for the whole package. bluegreenRace
// is built with the race detector: the server tests run the control plane
// (and the router and shims it starts) with it, and fail on a report.
var bin struct{ bluegreen, bluegreenRace, bgload string }

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "bluegreen-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin.bluegreen = filepath.Join(dir, "bluegreen")
	bin.bgload = filepath.Join(dir, "bgload")
	bin.bluegreenRace = filepath.Join(dir, "bluegreen-race")
	race := exec.Command("go", "build", "-race", "-o", bin.bluegreenRace, "bluegreen/cmd/bluegreen")
	race.Stdout, race.Stderr = os.Stderr, os.Stderr
	if err := race.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "building bluegreen with the race detector:", err)
		os.Exit(1)
	}
	for out, pkg := range map[string]string{bin.bluegreen: "bluegreen/cmd/bluegreen", bin.bgload: "bluegreen/cmd/bgload"} {
		cmd := exec.Command("go", "build", "-o", out, pkg)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "building", pkg, err)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
