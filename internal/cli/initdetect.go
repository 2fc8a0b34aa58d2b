package cli

import (
	"bufio"
	"encoding/json"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

// detected is the command `bluegreen init` found in a directory.
type detected struct {
	argv []string
	why  string // where it came from, as the user reads it
	todo string // what to do before deploying, or ""
}

// detectCommand looks in dir for what runs the app, most explicit first:
// a Procfile's web: line, a package.json start script, a Go main package,
// an executable file. ok is false when none is there.
func detectCommand(dir string) (d detected, ok bool) {
	for _, f := range []func(string) (detected, bool){detectProcfile, detectPackageJSON, detectGoMain, detectExecutable} {
		if d, ok := f(dir); ok {
			return d, true
		}
	}
	return detected{}, false
}

// hasDockerfile says whether dir holds a Dockerfile, which init mentions:
// the spec init writes runs a process, and says how to run the image instead.
func hasDockerfile(dir string) bool {
	info, err := os.Stat(filepath.Join(dir, "Dockerfile"))
	return err == nil && info.Mode().IsRegular()
}

// portVar finds $PORT (not ${PORT}, not part of a longer name).
var portVar = regexp.MustCompile(`\$PORT\b`)

// plainCommandLine holds no shell syntax but words and $PORT.
var plainCommandLine = regexp.MustCompile(`^[A-Za-z0-9_./:=,@%+-]+([ \t]+[A-Za-z0-9_./:=,@%+-]+)*$`)

// shellCommand turns a shell command line (a Procfile's) into an argv: its
// words when it is plain, else `sh -c` with the line, every $ doubled so
// that the shell, not bluegreen, expands the variables.
func shellCommand(line string) []string {
	line = strings.TrimSpace(line)
	if plainCommandLine.MatchString(portVar.ReplaceAllString(line, "PORT")) {
		return strings.Fields(portVar.ReplaceAllString(line, "$${PORT}"))
	}
	if !strings.ContainsAny(line, ";&|") {
		// exec: the app itself gets the stop signal and is the instance's pid.
		line = "exec " + line
	}
	return []string{"sh", "-c", strings.ReplaceAll(line, "$", "$$")}
}

func detectProcfile(dir string) (detected, bool) {
	f, err := os.Open(filepath.Join(dir, "Procfile"))
	if err != nil {
		return detected{}, false
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, cmd, ok := strings.Cut(sc.Text(), ":")
		if ok && strings.TrimSpace(name) == "web" && strings.TrimSpace(cmd) != "" {
			return detected{argv: shellCommand(cmd), why: "the web: line of Procfile"}, true
		}
	}
	return detected{}, false
}

func detectPackageJSON(dir string) (detected, bool) {
	b, err := os.ReadFile(filepath.Join(dir, "package.json"))
	if err != nil {
		return detected{}, false
	}
	var pkg struct {
		Scripts map[string]string `json:"scripts"`
	}
	if json.Unmarshal(b, &pkg) != nil || strings.TrimSpace(pkg.Scripts["start"]) == "" {
		return detected{}, false
	}
	d := detected{argv: []string{"npm", "start"}, why: "the start script of package.json"}
	if _, err := os.Stat(filepath.Join(dir, "node_modules")); err != nil {
		d.todo = "install its packages into the directory before deploying (npm ci)"
	}
	return d, true
}

var (
	goModule  = regexp.MustCompile(`(?m)^module\s+"?([^\s"]+)"?`)
	goPackage = regexp.MustCompile(`(?m)^package\s+main\b`)
)

// detectGoMain finds a main package at the root of a Go module: the command
// is the program `go build` makes of it, named after the module.
func detectGoMain(dir string) (detected, bool) {
	mod, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return detected{}, false
	}
	m := goModule.FindSubmatch(mod)
	if m == nil {
		return detected{}, false
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	isMain := false
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		if b, err := os.ReadFile(f); err == nil && goPackage.Match(b) {
			isMain = true
			break
		}
	}
	if !isMain {
		return detected{}, false
	}
	module := string(m[1])
	name := path.Base(module)
	d := detected{argv: []string{"./" + name}, why: "the Go main package of module " + module}
	if !isExecutable(filepath.Join(dir, name)) {
		d.todo = "build it into the directory before deploying (go build -o " + name + ")"
	}
	return d, true
}

// detectExecutable picks an executable file at the top of dir: the only
// one, else the one named like the directory, else the first without a
// file extension, else the first.
func detectExecutable(dir string) (detected, bool) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return detected{}, false
	}
	var names []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".") || !isExecutable(filepath.Join(dir, e.Name())) {
			continue
		}
		names = append(names, e.Name())
	}
	if len(names) == 0 {
		return detected{}, false
	}
	pick := names[0]
	if base := filepath.Base(absOr(dir)); slices.Contains(names, base) {
		pick = base
	} else if i := slices.IndexFunc(names, func(n string) bool { return !strings.Contains(n, ".") }); i >= 0 {
		pick = names[i]
	}
	d := detected{argv: []string{"./" + pick}, why: "the executable file " + pick}
	if len(names) > 1 {
		others := slices.DeleteFunc(slices.Clone(names), func(n string) bool { return n == pick })
		d.why += " (others: " + strings.Join(others, ", ") + ")"
	}
	return d, true
}

func isExecutable(name string) bool {
	info, err := os.Stat(name)
	return err == nil && info.Mode().IsRegular() && info.Mode().Perm()&0o111 != 0
}

// absOr is the absolute form of dir, or dir when it has none.
func absOr(dir string) string {
	if abs, err := filepath.Abs(dir); err == nil {
		return abs
	}
	return dir
}
