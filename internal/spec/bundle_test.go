package spec

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// writeBundle makes a real bundle directory: path → mode (0 = directory).
func writeBundle(t *testing.T, files map[string]os.FileMode) string {
	t.Helper()
	dir := t.TempDir()
	for name, mode := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if mode == 0 {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), mode); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckBundle(t *testing.T) {
	dir := writeBundle(t, map[string]os.FileMode{
		"shop":           0o755,
		"hooks/smoke.sh": 0o755,
		"hooks/plain.sh": 0o644,
		"hooks/sub":      0,
	})
	cases := []struct {
		name, run, want string
	}{
		{"present and executable", "./hooks/smoke.sh --fast", ""},
		{"without ./", "hooks/smoke.sh", ""},
		{"program on PATH", "curl -f http://127.0.0.1/", ""},
		{"absolute path", "/bin/true", ""},
		{"missing", "./hooks/missing.sh", `hooks.on_rollback[0].run: "./hooks/missing.sh" does not exist in the bundle`},
		{"not executable", "./hooks/plain.sh", "is not executable (mode -rw-r--r--)"},
		{"directory", "./hooks/sub", "is a directory"},
		{"escapes", "../outside.sh", "points outside the bundle"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, base+"hooks:\n  on_rollback:\n    - run: "+tc.run+"\n")
			err := s.CheckBundle(os.DirFS(dir))
			if tc.want == "" {
				if err != nil {
					t.Fatalf("CheckBundle: %v", err)
				}
				return
			}
			var errs *Errors
			if !errors.As(err, &errs) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("CheckBundle = %v, want *Errors containing %q", err, tc.want)
			}
			if p := errs.Problems[0]; p.Line != 6 || p.Column != 12 || p.File != FileName {
				t.Errorf("problem placed at %s:%d:%d, want %s:6:12", p.File, p.Line, p.Column, FileName)
			}
		})
	}
}

// The program a process runs is looked for as launching it would: in
// process.dir when it is a relative path, not at all when it is on PATH.
func TestCheckBundleCommand(t *testing.T) {
	dir := writeBundle(t, map[string]os.FileMode{"bin/shop": 0o755, "web/server.js": 0o644})
	cases := []struct{ name, process, want string }{
		{"missing", "  command: [./shop]\n", `bluegreen.yaml:3:13: process.command[0]: "./shop" does not exist in the bundle`},
		{"present", "  command: [bin/shop]\n", ""},
		{"in dir", "  command: [./shop]\n  dir: bin\n", ""},
		{"missing in dir", "  command: [./shop]\n  dir: web\n", `"./web/shop" does not exist in the bundle`},
		{"on PATH", "  command: [node, server.js]\n  dir: web\n", ""},
		{"expanded", "  command: [\"${APP_BIN}\"]\n  env: { APP_BIN: ./bin/shop }\n", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, "app: shop\nprocess:\n"+tc.process)
			err := s.CheckBundle(os.DirFS(dir))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckBundle = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestCheckBundleExample(t *testing.T) {
	s, err := ParseFile("testdata/example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	err = s.CheckBundle(os.DirFS(writeBundle(t, map[string]os.FileMode{"shop": 0o755, "hooks/smoke.sh": 0o755})))
	want := "testdata/example.yaml:23:28: hooks.before_install[0].run: \"./hooks/snapshot-db.sh\" does not exist in the bundle\n" +
		"testdata/example.yaml:52:23: checks.rules[3].command.run: \"./hooks/check.sh\" does not exist in the bundle"
	if err == nil || err.Error() != want {
		t.Fatalf("CheckBundle =\n%v\nwant\n%s", err, want)
	}
}

// A docker spec's volume sources must be in the bundle, and stay in it
// through symlinks, since Docker follows them on the host; its command is
// in the image, never looked for in the bundle.
func TestCheckBundleVolumes(t *testing.T) {
	dir := writeBundle(t, map[string]os.FileMode{
		"config/shop.toml": 0o644,
		"static":           0,
		"hooks/smoke.sh":   0o755,
	})
	for link, target := range map[string]string{
		"current":       "config",          // inside
		"config/again":  "../static",       // inside, through ..
		"chain":         "current/again",   // a link through links
		"etc":           "/etc",            // absolute
		"up":            "..",              // the bundle's parent
		"config/sneaky": "../../outside",   // out through ..
		"via":           "current/../../x", // out through a link and ..
		"loop":          "loop",            // never ends
		"dangling":      "config/missing",  // inside, but nothing there
		"static/parent": "../config/../..", // out after a detour
	} {
		if err := os.Symlink(target, filepath.Join(dir, filepath.FromSlash(link))); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct{ name, volume, want string }{
		{"directory", "config:/etc/shop", ""},
		{"file", "config/shop.toml:/etc/shop.toml:ro", ""},
		{"whole bundle", ".:/app", ""},
		{"dot slash", "./static:/srv", ""},
		{"symlink inside", "current/shop.toml:/etc/shop.toml", ""},
		{"symlink through ..", "config/again:/srv", ""},
		{"chain of symlinks", "chain:/srv", ""},
		{"missing", "data:/data", `bluegreen.yaml:5:13: docker.volumes[0]: "data" does not exist in the bundle`},
		{"missing below a file", "config/shop.toml/x:/x", `"config/shop.toml/x" does not exist in the bundle: config/shop.toml is a file`},
		{"absolute symlink", "etc:/host-etc", `"etc" leaves the bundle: etc is a symlink to /etc`},
		{"symlink to the parent", "up/x:/x", `"up/x" leaves the bundle: up is a symlink to ..`},
		{"symlink out through ..", "config/sneaky:/x", "config/sneaky is a symlink to ../../outside"},
		{"link then ..", "via:/x", "leaves the bundle"},
		{"after a detour", "static/parent:/x", "leaves the bundle"},
		{"loop", "loop:/x", "too many symlinks"},
		{"dangling", "dangling:/x", `"dangling" does not exist in the bundle`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := mustParse(t, "app: shop\nplatform: docker\ndocker:\n  image: shop:1\n  volumes: [\""+tc.volume+"\"]\n  command: [./not-in-the-bundle]\n")
			err := s.CheckBundle(os.DirFS(dir))
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("CheckBundle = %v, want %q", err, tc.want)
			}
		})
	}
}
