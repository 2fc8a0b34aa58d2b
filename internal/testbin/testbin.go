// Package testbin builds the project's programs once for a test binary
// whose tests run them as real processes, and removes them afterwards.
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Program is one program to build.
type Program struct {
	Path *string // set to where the program was built
	Pkg  string  // its import path, e.g. "bluegreen/cmd/bluegreen"
	Name string  // its file name (the last element of Pkg when empty)
	Race bool    // built with the race detector
}

// Main builds the programs into a new temporary directory, runs the tests,
// removes the directory and exits with the tests' code. A build that fails
// ends the run with status 1 and go build's output.
func Main(m *testing.M, programs ...Program) {
	os.Exit(Run(m, programs...))
}

// Run is Main without the exit: it returns the code to exit with, so
// that TestMain can clean up more after the tests.
func Run(m *testing.M, programs ...Program) int {
	dir, err := os.MkdirTemp("", "bluegreen-testbin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)
	if err := build(dir, programs); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return m.Run()
}

func build(dir string, programs []Program) error {
	for _, p := range programs {
		name := p.Name
		if name == "" {
			name = filepath.Base(p.Pkg)
		}
		out := filepath.Join(dir, name)
		args := []string{"build", "-o", out}
		if p.Race {
			args = append(args, "-race")
		}
		if b, err := exec.Command("go", append(args, p.Pkg)...).CombinedOutput(); err != nil {
			return fmt.Errorf("building %s: %v\n%s", p.Pkg, err, b)
		}
		*p.Path = out
	}
	return nil
}
