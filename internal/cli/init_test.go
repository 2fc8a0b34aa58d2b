package cli

import (
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"bluegreen/internal/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata")

// testdata is absolute: the init tests move into temporary directories.
var testdata, _ = filepath.Abs("testdata")

// golden compares got with testdata/NAME, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	file := filepath.Join(testdata, name)
	if *update {
		if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run the test with -update to write it)", err)
	}
	if got != string(want) {
		t.Errorf("output differs from %s (-update rewrites it):\n--- got:\n%s\n--- want:\n%s", file, got, want)
	}
}

// workDir makes a temporary working directory holding files (name →
// content; a name ending in * is made executable, a name ending in / is a
// directory) and moves into it, so that outputs name relative paths only.
func workDir(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, body := range files {
		mode := os.FileMode(0o644)
		if strings.HasSuffix(name, "*") {
			name, mode = strings.TrimSuffix(name, "*"), 0o755
		}
		p := filepath.Join(root, name)
		if strings.HasSuffix(name, "/") {
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), mode); err != nil {
			t.Fatal(err)
		}
	}
	t.Chdir(root)
	return root
}

// transcript runs commands as a person would type them and records what
// each printed and its exit code.
func transcript(t *testing.T, commands ...[]string) string {
	t.Helper()
	var b strings.Builder
	for _, args := range commands {
		code, out, errOut := runCLI(t, args...)
		fmt.Fprintf(&b, "$ bluegreen %s\n%s%sexit %d\n", joinCommand(args), out, errOut, code)
	}
	return b.String()
}

// readSpec returns the written spec, which must parse as it is.
func readSpec(t *testing.T, file string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestInitFinds runs init on directories holding each kind of app it
// recognises, then validate on what it wrote.
func TestInitFinds(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
	}{
		{"executable", map[string]string{"shop/shop*": "#!/bin/sh\n", "shop/build.sh*": "#!/bin/sh\n", "shop/README": "x"}},
		{"procfile", map[string]string{"shop/Procfile": "release: ./migrate\nweb: bin/server --listen 127.0.0.1:$PORT\n", "shop/bin/server*": ""}},
		{"procfile-shell", map[string]string{"shop/Procfile": "web: gunicorn shop:app --bind 127.0.0.1:$PORT --workers ${WEB_CONCURRENCY:-2}\n"}},
		{"procfile-compound", map[string]string{"shop/Procfile": "web: ./migrate && ./server --port=$PORT\n"}},
		{"package-json", map[string]string{"shop/package.json": `{"name": "shop", "scripts": {"start": "node server.js"}}`, "shop/server.js": ""}},
		{"go-main", map[string]string{"shop/go.mod": "module example.com/tools/shopd\n\ngo 1.26\n", "shop/main.go": "package main\n\nfunc main() {}\n", "shop/main_test.go": "package main\n"}},
		{"dockerfile", map[string]string{"shop/Dockerfile": "FROM scratch\n", "shop/shop*": ""}},
		{"appspec", map[string]string{"shop/appspec.yml": "version: 0.0\nos: linux\n", "shop/shop*": ""}},
		{"nothing", map[string]string{"shop/README.md": "x"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			workDir(t, tc.files)
			out := transcript(t, []string{"init", "shop"}, []string{"validate", "shop"})
			golden(t, "init/"+tc.name+".out", out+"--- shop/bluegreen.yaml\n"+readSpec(t, "shop/bluegreen.yaml"))
		})
	}
}

func TestInitCurrentDirectoryAndFlags(t *testing.T) {
	root := workDir(t, map[string]string{"My Shop_2/server*": ""})
	t.Chdir(filepath.Join(root, "My Shop_2"))
	out := transcript(t,
		[]string{"init", "--command", `./server --listen "127.0.0.1:$PORT" --name 'my shop'`, "--port-env", "HTTP_PORT", "--health-path", "/ready"},
		[]string{"validate"},
		[]string{"validate", "--print"})
	golden(t, "init/flags.out", out+"--- bluegreen.yaml\n"+readSpec(t, "bluegreen.yaml"))
}

func TestInitNeverOverwritesWithoutForce(t *testing.T) {
	workDir(t, map[string]string{"shop/shop*": "", "shop/bluegreen.yaml": "app: mine\n"})
	out := transcript(t, []string{"init", "shop"})
	if got := readSpec(t, "shop/bluegreen.yaml"); got != "app: mine\n" {
		t.Fatalf("init replaced the spec without --force:\n%s", got)
	}
	out += transcript(t, []string{"init", "shop", "--app", "shop2", "--force"})
	if got := readSpec(t, "shop/bluegreen.yaml"); !strings.Contains(got, "app: shop2\n") {
		t.Fatalf("--force did not replace the spec:\n%s", got)
	}
	golden(t, "init/force.out", out)
}

func TestInitUsage(t *testing.T) {
	workDir(t, map[string]string{"shop/shop*": "", "file": "x", "bundle/x": ""})
	out := transcript(t,
		[]string{"init", "a", "b"},
		[]string{"init", "missing"},
		[]string{"init", "file"},
		[]string{"init", "shop", "--app", "My_Shop"},
		[]string{"init", "shop", "--app", "-shop"},
		[]string{"init", "shop", "--command", `./shop "127.0.0.1:$PORT`},
		[]string{"init", "shop", "--command", `./shop 'it`},
		[]string{"init", "shop", "--port-env", "HTTP-PORT"},
		[]string{"init", "shop", "--port-env", "BG_PORT"},
		[]string{"init", "shop", "--health-path", "healthz"},
		[]string{"init", "shop", "--health-path", "/health check"},
		[]string{"init", "shop", "--from", "missing.yml"},
		[]string{"init", "shop", "--from", "bundle"},
		[]string{"init", "shop", "--bogus"},
	)
	golden(t, "init/usage.out", out)
	if _, err := os.Stat("shop/bluegreen.yaml"); err == nil {
		t.Error("a refused init wrote a spec")
	}
}

// TestInitAsks answers init's questions as a person on a terminal would,
// one of them badly at first.
func TestInitAsks(t *testing.T) {
	workDir(t, map[string]string{"shop/shop*": ""})
	var out, errOut strings.Builder
	in := &typist{lines: []string{"Shop\n", "web-shop\n", "\n", "APP_PORT\n", "/ready\n"}, echo: &out}
	err := runInit(&out, &errOut, initOptions{Dir: "shop", Ask: true, In: in})
	if err != nil {
		t.Fatalf("%v\n%s", err, errOut.String())
	}
	golden(t, "init/asks.out", out.String()+"--- shop/bluegreen.yaml\n"+readSpec(t, "shop/bluegreen.yaml"))

	// A flag answers its question: only the others are asked.
	out.Reset()
	in = &typist{lines: []string{"\n", "\n", "\n"}, echo: &out}
	if err := runInit(&out, &errOut, initOptions{Dir: "shop", Ask: true, In: in, App: "shop", Force: true}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), "App name") || !strings.Contains(out.String(), "Command that runs one instance [./shop]: ") {
		t.Errorf("asked:\n%s", out.String())
	}

	// Converting an appspec, the command has no default.
	workDir(t, map[string]string{"app/appspec.yml": "version: 0.0\nos: linux\n"})
	out.Reset()
	in = &typist{lines: []string{"\n", "\n", "\n", "\n"}, echo: &out}
	if err := runInit(&out, &errOut, initOptions{From: "app", Ask: true, In: in}); err != nil {
		t.Fatal(err)
	}
	golden(t, "init/asks-from.out", out.String())
}

// typist gives one line per read, echoed as a terminal shows it.
type typist struct {
	lines []string
	echo  io.Writer
}

func (ty *typist) Read(p []byte) (int, error) {
	if len(ty.lines) == 0 {
		return 0, io.EOF
	}
	n := copy(p, ty.lines[0])
	ty.echo.Write(p[:n])
	ty.lines[0] = ty.lines[0][n:]
	if ty.lines[0] == "" {
		ty.lines = ty.lines[1:]
	}
	return n, nil
}

func TestInitAskEndOfInput(t *testing.T) {
	workDir(t, map[string]string{"shop/shop*": ""})
	var out, errOut strings.Builder
	err := runInit(&out, &errOut, initOptions{Dir: "shop", Ask: true, In: strings.NewReader("shop\n")})
	want := `init: no answer to "Command that runs one instance" (end of input); nothing written`
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %s", err, want)
	}
	if _, err := os.Stat("shop/bluegreen.yaml"); err == nil {
		t.Error("init wrote a spec without its answers")
	}
	// Three bad answers in a row end it too.
	err = runInit(&out, &errOut, initOptions{Dir: "shop", Ask: true, In: strings.NewReader("A\nB\nC\n")})
	if err == nil || !strings.Contains(err.Error(), "the app's name is 1 to 63") || !strings.Contains(err.Error(), "nothing written") {
		t.Fatalf("got %v", err)
	}
}

// copyTree copies a directory tree, keeping the files' modes, and leaving
// out what its .gitignore names at its top (what a run of its README made).
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	ignored := map[string]bool{}
	if b, err := os.ReadFile(filepath.Join(src, ".gitignore")); err == nil {
		for _, l := range strings.Fields(string(b)) {
			ignored[strings.TrimPrefix(l, "/")] = true
		}
	}
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if ignored[rel] {
			return nil
		}
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, b, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestInitFromCodeDeploySample converts examples/codedeploy as its README
// says, and without a command.
func TestInitFromCodeDeploySample(t *testing.T) {
	src := filepath.Join(testdata, "../../../examples/codedeploy")
	workDir(t, map[string]string{"bundle/shop*": ""}) // the app, built as its README says
	copyTree(t, src, "bundle")
	out := transcript(t,
		[]string{"init", "--from", "bundle/appspec.yml", "--app", "shop", "--command", "./shop"},
		[]string{"validate", "bundle"})
	golden(t, "init/from-codedeploy.out", out+"--- bundle/bluegreen.yaml\n"+readSpec(t, "bundle/bluegreen.yaml"))
	s, err := spec.ParseFile("bundle/bluegreen.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range s.Hooks.Events() {
		if ev.Name != "after_allow_test_traffic" && ev.Name != "on_rollback" && len(ev.Hooks) != 1 {
			t.Errorf("%s: %d hooks, want the appspec's one", ev.Name, len(ev.Hooks))
		}
	}

	workDir(t, nil)
	copyTree(t, src, "bundle")
	out = transcript(t, []string{"init", "--from", "bundle"}, []string{"validate", "bundle"})
	golden(t, "init/from-codedeploy-no-command.out", out)
}

func TestInitFromProblems(t *testing.T) {
	workDir(t, map[string]string{
		"bad/appspec.yml": "version: 0.0\nos: windows\nhooks:\n  AfterInstal:\n    - location: scripts/a.sh\n      timeout: 7200\n",
		"ecs/appspec.yml": "version: 0.0\nResources:\n  - TargetService:\n      Type: AWS::ECS::Service\nHooks:\n  - BeforeInstall: \"CheckFunction\"\n",
	})
	out := transcript(t, []string{"init", "--from", "bad/appspec.yml"}, []string{"init", "--from", "ecs"})
	golden(t, "init/from-problems.out", out)
	for _, f := range []string{"bad/bluegreen.yaml", "ecs/bluegreen.yaml"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s was written from a refused appspec", f)
		}
	}
}

// TestInitFromScriptsToLookAt: scripts that would not work as they are.
func TestInitFromScriptsToLookAt(t *testing.T) {
	workDir(t, map[string]string{
		"app/appspec.yml": `version: 0.0
os: linux
hooks:
  ApplicationStop:
    - location: scripts/stop.sh
  BeforeInstall:
    - location: /scripts/setup.sh
      timeout: 90
  ApplicationStart:
    - location: scripts/start.sh
  AfterAllowTestTraffic:
    - location: scripts/missing.sh
`,
		"app/scripts/stop.sh*":  "#!/bin/sh\nservice shop stop\n",
		"app/scripts/setup.sh":  "#!/bin/sh\necho \"$APPLICATION_NAME: $LIFECYCLE_EVENT of $DEPLOYMENT_ID\"\n",
		"app/scripts/start.sh*": "#!/bin/sh\ncd /var/www/shop\nnohup ./shop --port 8080 >/dev/null 2>&1 &\n",
		"app/shop*":             "",
	})
	out := transcript(t, []string{"init", "--from", "app/appspec.yml", "--command", "./shop --port ${PORT}"}, []string{"validate", "app"})
	golden(t, "init/from-look-at.out", out+"--- app/bluegreen.yaml\n"+readSpec(t, "app/bluegreen.yaml"))
}

func TestSplitCommand(t *testing.T) {
	cases := []struct {
		in   string
		want []string
	}{
		{`./shop`, []string{"./shop"}},
		{`  ./shop   --listen  127.0.0.1:$PORT `, []string{"./shop", "--listen", "127.0.0.1:${PORT}"}},
		{`./shop --listen "127.0.0.1:${PORT}"`, []string{"./shop", "--listen", "127.0.0.1:${PORT}"}},
		{`sh -c 'exec ./shop "$1"' x`, []string{"sh", "-c", `exec ./shop "$1"`, "x"}},
		{`a\ b "c \"d\" \$e" '' f`, []string{"a b", `c "d" $e`, "", "f"}},
		{`./shop $PORTS $PORT`, []string{"./shop", "$PORTS", "${PORT}"}},
	}
	for _, tc := range cases {
		got, err := splitCommand(tc.in)
		if err != nil || strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("%s: got %q (%v), want %q", tc.in, got, err, tc.want)
		}
		if err == nil {
			back, err := splitCommand(joinCommand(got))
			if err != nil || strings.Join(back, "|") != strings.Join(got, "|") {
				t.Errorf("%s: joinCommand gives %q, which splits into %q", tc.in, joinCommand(got), back)
			}
		}
	}
}

func TestAppFromDir(t *testing.T) {
	for dir, want := range map[string]string{
		"/srv/shop": "shop", "/srv/My Shop_2": "my-shop-2", "/srv/--x--": "x", "/srv/___": "app",
		"/srv/" + strings.Repeat("a", 70): strings.Repeat("a", 63),
	} {
		if got := appFromDir(dir); got != want {
			t.Errorf("%s: got %q, want %q", dir, got, want)
		}
	}
}
