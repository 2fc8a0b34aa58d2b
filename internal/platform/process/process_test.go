package process

import (
	"os"
	"path/filepath"
	"testing"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/platformtest"
)

// TestMain lets the test binary be its own shim ("instance-shim ID", like
// the bluegreen binary) and a stand-in server for the kill -9 test.
func TestMain(m *testing.M) {
	if len(os.Args) > 1 {
		switch os.Args[1] {
		case "instance-shim":
			os.Exit(RunShim(os.Args[2:]))
		case "test-server":
			os.Exit(runTestServer(os.Args[2:]))
		case "ask-shim":
			os.Exit(runAskShim(os.Args[2:]))
		}
	}
	code := m.Run()
	platformtest.RemoveTestApp()
	os.Exit(code)
}

// testOptions are the options tests open platforms with.
func testOptions(stateDir string) Options {
	return Options{StateDir: stateDir, Shim: []string{os.Args[0], "instance-shim"}}
}

func newTestPlatform(t *testing.T, opts Options) *Platform {
	t.Helper()
	p, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func TestConformance(t *testing.T) {
	for _, mode := range shimModes {
		t.Run(mode.name, func(t *testing.T) { conformance(t, mode.perFleet) })
	}
}

func conformance(t *testing.T, perFleet bool) {
	platformtest.Run(t, platformtest.Config{
		New: func(t *testing.T, stateDir string) platform.Platform {
			opts := testOptions(stateDir)
			opts.ShimPerFleet = perFleet
			p, err := New(opts)
			if err != nil {
				t.Fatal(err)
			}
			return p
		},
		App: func(t *testing.T) platform.InstanceSpec {
			bin := platformtest.TestApp(t)
			return platform.InstanceSpec{Dir: filepath.Dir(bin), WorkDir: ".", Command: []string{"./" + filepath.Base(bin)}}
		},
		Adopts: true,
	})
}
