// Command testsummary reads `go test -json` on its standard input and
// shows a test run as people want to watch it: a line per package as it
// ends, a line per long test as it ends (the end-to-end tests take
// minutes), a line every half minute saying what still runs, the whole
// output of whatever failed, and at the end one line of totals. It exits
// 1 when anything failed (a test, a package, a build), 0 otherwise.
//
//	go test -json ./... | go run ./scripts/testsummary
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"sync"
	"time"
)

// event is one line of `go test -json` (see `go doc test2json`).
type event struct {
	Time       time.Time
	Action     string
	Package    string
	Test       string
	Elapsed    float64
	Output     string
	ImportPath string
}

// longTest is how long a test must take for its end to get a line.
const longTest = 5 * time.Second

// quiet is how long the output may stay silent before a progress line.
const quiet = 30 * time.Second

type summary struct {
	mu      sync.Mutex
	out     io.Writer
	last    time.Time
	running map[string]time.Time // "pkg TestX" → started
	output  map[string][]string  // "pkg TestX" or "pkg" → its output, until it passes
	build   map[string][]string  // import path → build output

	pkgPass, pkgFail             int
	testPass, testFail, testSkip int
	failedTests, failedPackages  []string
	buildFailed                  bool
	started                      time.Time
}

func main() {
	if run(os.Stdin, os.Stdout) {
		os.Exit(1)
	}
}

// run reads a test run from in, reports it on out, and says whether
// anything failed.
func run(in io.Reader, out io.Writer) (failed bool) {
	s := &summary{out: out, running: map[string]time.Time{}, output: map[string][]string{},
		build: map[string][]string{}, started: time.Now(), last: time.Now()}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() { defer close(stopped); s.heartbeat(done) }()
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil || e.Action == "" {
			// Not test2json (vet's or the toolchain's own words): pass it on.
			s.print("%s", sc.Text())
			continue
		}
		s.take(e)
	}
	close(done)
	<-stopped
	return s.end()
}

func key(e event) string { return strings.TrimSpace(e.Package + " " + e.Test) }

// topLevel says whether a test is not a subtest.
func topLevel(name string) bool { return name != "" && !strings.Contains(name, "/") }

func (s *summary) print(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	fmt.Fprintf(s.out, format+"\n", args...)
	s.last = time.Now()
}

func (s *summary) take(e event) {
	s.mu.Lock()
	k := key(e)
	switch e.Action {
	case "build-output":
		s.build[e.ImportPath] = append(s.build[e.ImportPath], e.Output)
	case "build-fail":
		s.buildFailed = true
	case "start":
	case "run":
		if topLevel(e.Test) {
			s.running[k] = e.Time
		}
	case "output":
		s.output[k] = append(s.output[k], e.Output)
	case "pass", "skip", "fail":
		delete(s.running, k)
	}
	s.mu.Unlock()

	switch {
	case e.Test == "" && e.Action == "pass":
		s.mu.Lock()
		s.pkgPass++
		delete(s.output, k)
		s.mu.Unlock()
		s.print("ok    %s (%.1fs)", e.Package, e.Elapsed)
	case e.Test == "" && e.Action == "skip":
		s.mu.Lock()
		delete(s.output, k)
		s.mu.Unlock()
		s.print("--    %s (no tests)", e.Package)
	case e.Test == "" && e.Action == "fail":
		s.mu.Lock()
		s.pkgFail++
		s.failedPackages = append(s.failedPackages, e.Package)
		out := s.output[k]
		for path, lines := range s.build {
			if path == e.Package || strings.HasPrefix(path, e.Package+" ") {
				out = append(lines, out...)
			}
		}
		delete(s.output, k)
		s.mu.Unlock()
		s.print("FAIL  %s (%.1fs)", e.Package, e.Elapsed)
		for _, l := range out {
			s.print("  %s", strings.TrimRight(l, "\n"))
		}
	case e.Action == "pass" && e.Test != "":
		s.mu.Lock()
		s.testPass++
		delete(s.output, k)
		s.mu.Unlock()
		if topLevel(e.Test) && time.Duration(e.Elapsed*float64(time.Second)) >= longTest {
			s.print("  pass %s %s (%.1fs)", short(e.Package), e.Test, e.Elapsed)
		}
	case e.Action == "skip" && e.Test != "":
		s.mu.Lock()
		s.testSkip++
		delete(s.output, k)
		s.mu.Unlock()
	case e.Action == "fail" && e.Test != "":
		s.mu.Lock()
		s.testFail++
		s.failedTests = append(s.failedTests, k)
		out := s.output[k]
		delete(s.output, k)
		s.mu.Unlock()
		s.print("  FAIL %s %s (%.1fs)", short(e.Package), e.Test, e.Elapsed)
		for _, l := range out {
			s.print("  %s", strings.TrimRight(l, "\n"))
		}
	}
}

// short drops the module's name from a package path.
func short(pkg string) string {
	if i := strings.IndexByte(pkg, '/'); i >= 0 {
		return pkg[i+1:]
	}
	return pkg
}

// heartbeat says what still runs whenever the output has been quiet for a
// while, so that a long end-to-end test is not mistaken for a hang.
func (s *summary) heartbeat(done chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		s.mu.Lock()
		silent := time.Since(s.last) >= quiet
		var names []string
		for k, since := range s.running {
			names = append(names, fmt.Sprintf("%s (%s)", k, time.Since(since).Round(time.Second)))
		}
		s.mu.Unlock()
		if silent && len(names) > 0 {
			sort.Strings(names)
			s.print("  …    still running: %s", strings.Join(names, ", "))
		}
	}
}

// end prints the totals and says whether anything failed.
func (s *summary) end() (failed bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	failed = s.pkgFail > 0 || s.testFail > 0 || s.buildFailed
	fmt.Fprintf(s.out, "\npackages: %d passed, %d failed; tests: %d passed, %d failed, %d skipped; %s\n",
		s.pkgPass, s.pkgFail, s.testPass, s.testFail, s.testSkip, time.Since(s.started).Round(time.Second))
	for _, k := range s.failedTests {
		fmt.Fprintf(s.out, "  failed: %s\n", k)
	}
	for _, p := range s.failedPackages {
		fmt.Fprintf(s.out, "  failed package: %s\n", p)
	}
	fmt.Fprintf(s.out, "%d passed, %d failed\n", s.testPass, s.testFail+s.pkgFail-s.testFailPackages())
	return failed
}

// testFailPackages counts the failed packages that a failed test explains,
// so that the closing count does not count a failure twice.
func (s *summary) testFailPackages() int {
	seen := map[string]bool{}
	for _, k := range s.failedTests {
		seen[strings.Fields(k)[0]] = true
	}
	n := 0
	for _, p := range s.failedPackages {
		if seen[p] {
			n++
		}
	}
	return n
}
