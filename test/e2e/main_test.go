// Package e2e runs bluegreen as a user would: the real binary as its own
// process, real backends, and load from a separate process.
package e2e

import (
	"os"
	"testing"

	"bluegreen/internal/testbin"
	"bluegreen/internal/testdocker"
)

// bin holds the binaries built once for the whole package. bluegreenRace
// is built with the race detector: the server tests run the control plane
// (and the router and shims it starts) with it, and fail on a report.
var bin struct{ bluegreen, bluegreenRace, bgload, hello, stack string }

func TestMain(m *testing.M) {
	code := testbin.Run(m,
		testbin.Program{Path: &bin.bluegreen, Pkg: "bluegreen/cmd/bluegreen"},
		testbin.Program{Path: &bin.bluegreenRace, Pkg: "bluegreen/cmd/bluegreen", Name: "bluegreen-race", Race: true},
		testbin.Program{Path: &bin.bgload, Pkg: "bluegreen/cmd/bgload"},
		testbin.Program{Path: &bin.hello, Pkg: "bluegreen/examples/hello"},
		testbin.Program{Path: &bin.stack, Pkg: "bluegreen/examples/stack"},
	)
	testdocker.Close() // the private Docker engine, if a test started it
	os.Exit(code)
}
