package cli

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bluegreen/internal/spec"
)

// runCLI runs the command tree as Main does and returns the exit code Main
// would return, with what was printed.
func runCLI(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	root := NewRootCmd(&out, &errOut)
	root.SetArgs(args)
	err := root.Execute()
	var ue usageError
	switch {
	case err == nil:
		code = ExitOK
	case errors.As(err, &ue):
		code = ExitUsage
	default:
		code = ExitError
	}
	if err != nil {
		errOut.WriteString("bluegreen: " + err.Error() + "\n")
	}
	return code, out.String(), errOut.String()
}

const goodSpec = `app: shop
process:
  command: ["./shop", "--listen", "127.0.0.1:${PORT}"]
hooks:
  after_allow_test_traffic: [{ run: ./hooks/smoke.sh }]
`

// bundleDir writes a bundle with the given spec and, if withHook, its hook.
func bundleDir(t *testing.T, specText string, withHook bool) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, spec.FileName), []byte(specText), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "shop"), []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if withHook {
		if err := os.MkdirAll(filepath.Join(dir, "hooks"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hooks", "smoke.sh"), []byte("#!/bin/sh\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// validate finds a missing program as launching it would.
func TestValidateMissingCommand(t *testing.T) {
	dir := bundleDir(t, goodSpec, true)
	if err := os.Remove(filepath.Join(dir, "shop")); err != nil {
		t.Fatal(err)
	}
	code, _, stderr := runCLI(t, "validate", dir)
	want := filepath.Join(dir, spec.FileName) + `:3:13: process.command[0]: "./shop" does not exist in the bundle`
	if code != ExitError || !strings.Contains(stderr, want) {
		t.Fatalf("code %d, stderr %q; want %q", code, stderr, want)
	}
}

func TestValidateOK(t *testing.T) {
	dir := bundleDir(t, goodSpec, true)
	code, out, errOut := runCLI(t, "validate", dir)
	want := "ok: " + filepath.Join(dir, spec.FileName) + " (app shop)\n"
	if code != ExitOK || out != want || errOut != "" {
		t.Fatalf("code %d, stdout %q, stderr %q; want 0, %q", code, out, errOut, want)
	}
}

func TestValidateDefaultDir(t *testing.T) {
	t.Chdir(bundleDir(t, goodSpec, true))
	code, out, _ := runCLI(t, "validate")
	if code != ExitOK || out != "ok: bluegreen.yaml (app shop)\n" {
		t.Fatalf("code %d, stdout %q", code, out)
	}
}

func TestValidateMissingHook(t *testing.T) {
	dir := bundleDir(t, goodSpec, false)
	code, out, errOut := runCLI(t, "validate", dir)
	file := filepath.Join(dir, spec.FileName)
	want := file + `:5:37: hooks.after_allow_test_traffic[0].run: "./hooks/smoke.sh" does not exist in the bundle` + "\n" +
		"bluegreen: " + file + ": 1 problem\n"
	if code != ExitError || out != "" || errOut != want {
		t.Fatalf("code %d, stdout %q, stderr:\n%s\nwant:\n%s", code, out, errOut, want)
	}
}

func TestValidateFileWithoutDirSkipsBundle(t *testing.T) {
	dir := bundleDir(t, goodSpec, false)
	code, out, _ := runCLI(t, "validate", "-f", filepath.Join(dir, spec.FileName))
	if code != ExitOK || !strings.HasPrefix(out, "ok: ") {
		t.Fatalf("code %d, stdout %q", code, out)
	}
}

func TestValidateFileAndDir(t *testing.T) {
	hooks := bundleDir(t, "unused", true)
	specFile := filepath.Join(bundleDir(t, goodSpec, false), spec.FileName)
	if code, out, errOut := runCLI(t, "validate", hooks, "-f", specFile); code != ExitOK {
		t.Fatalf("code %d, stdout %q, stderr %q", code, out, errOut)
	}
}

func TestValidateProblems(t *testing.T) {
	dir := bundleDir(t, "app: Shop\nprocess:\n  command: ./shop\n  stop_timout: 5s\n", false)
	code, out, errOut := runCLI(t, "validate", dir)
	file := filepath.Join(dir, spec.FileName)
	want := file + `:1:6: app: bad app name "Shop": want 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'` + "\n" +
		file + `:3:12: process.command: want a list, got the string "./shop"` + "\n" +
		file + `:4:3: process.stop_timout: unknown key (did you mean "stop_timeout"?)` + "\n" +
		"bluegreen: " + file + ": 3 problems\n"
	if code != ExitError || out != "" || errOut != want {
		t.Fatalf("code %d, stdout %q, stderr:\n%s\nwant:\n%s", code, out, errOut, want)
	}
}

func TestValidatePrint(t *testing.T) {
	dir := bundleDir(t, goodSpec, true)
	code, out, _ := runCLI(t, "validate", dir, "--print")
	if code != ExitOK {
		t.Fatalf("code %d", code)
	}
	for _, want := range []string{"app: shop\n", "  instances: 1\n", "  # expanded from preset AllAtOnce\n  steps:\n    - weight: 100\n", "bake: 5m\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("--print output lacks %q:\n%s", want, out)
		}
	}
	if _, err := spec.Parse([]byte(out), "printed.yaml"); err != nil {
		t.Errorf("printed spec does not parse: %v", err)
	}
}

func TestValidateUsage(t *testing.T) {
	dir := bundleDir(t, goodSpec, true)
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"two directories", []string{"validate", dir, dir}, ExitUsage, "at most one directory"},
		{"unknown flag", []string{"validate", "--bogus"}, ExitUsage, "unknown flag: --bogus"},
		{"-f without value", []string{"validate", "-f"}, ExitUsage, "flag needs an argument"},
		{"dir is a file", []string{"validate", filepath.Join(dir, spec.FileName)}, ExitUsage, "is not a directory (use -f for a spec file)"},
		{"dir missing", []string{"validate", filepath.Join(dir, "nope")}, ExitUsage, "no such file or directory"},
		{"file missing", []string{"validate", "-f", filepath.Join(dir, "nope.yaml")}, ExitUsage, "nope.yaml does not exist"},
		{"no spec in the dir", []string{"validate", t.TempDir()}, ExitUsage, "has no bluegreen.yaml: write one (`bluegreen init"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, _, errOut := runCLI(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("code %d, stderr %q; want %d and %q", code, errOut, tc.code, tc.want)
			}
		})
	}
}
