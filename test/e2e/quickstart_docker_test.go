package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"bluegreen/internal/testdocker"
	"bluegreen/internal/testwait"
)

// The Docker variant of the quickstart, as a user runs it with DOCKER_HOST
// naming their engine: the canary of two images under load loses nothing,
// the summary shows the image ID each revision pinned, and nothing is left
// running on the engine or on the machine.
func TestQuickstartDocker(t *testing.T) {
	eng := testdocker.Shared(t)
	dir := passableTempDir(t)
	cmd := exec.Command(bin.bluegreen, "quickstart", "--platform", "docker")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "DOCKER_HOST="+eng.Host)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("quickstart --platform docker: %v\n%s", err, out)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("the quickstart left %d entries in its temporary directory %s", len(left), dir)
	}
	// The images are kept: the summary names what they are on the engine.
	ctx := context.Background()
	cli := eng.Client(t)
	ids := map[string]string{}
	for _, ref := range []string{"bluegreen-hello:v1", "bluegreen-hello:v2"} {
		img, err := cli.ImageInspect(ctx, ref)
		if err != nil {
			t.Fatalf("the quickstart's image %s: %v", ref, err)
		}
		ids[ref] = img.ID
	}
	if ids["bluegreen-hello:v1"] == ids["bluegreen-hello:v2"] {
		t.Fatalf("v1 and v2 are the same image %s", ids["bluegreen-hello:v1"])
	}
	short := func(id string) string { return regexp.QuoteMeta(strings.TrimPrefix(id, "sha256:")[:12]) }
	text := string(out)
	for _, want := range []string{
		`failed requests:  0\n`,
		`requests served:  \d+ \(\d+ by v1, \d+ by v2\)`,
		`traffic steps:    10% at \+0\.0s, 50% at \+\d+\.\ds, 100% at \+\d+\.\ds`,
		`switch took:      \d+\.\ds`,
		`images pinned:    revision 1: bluegreen-hello:v1 \(` + short(ids["bluegreen-hello:v1"]) + `\)\n +revision 2: bluegreen-hello:v2 \(` + short(ids["bluegreen-hello:v2"]) + `\)\n`,
		`bluegreen deploy --image bluegreen-hello:v2 hello`,
		`Succeeded +blue retired`,
	} {
		if !regexp.MustCompile(want).MatchString(text) {
			t.Errorf("the output lacks %q:\n%s", want, text)
		}
	}
	// No container of either image is left on the engine, running or not.
	res, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.Items {
		if c.ImageID == ids["bluegreen-hello:v1"] || c.ImageID == ids["bluegreen-hello:v2"] || c.Labels["io.bluegreen.app"] == "hello" {
			t.Errorf("container %s (%s, %s) is left on the engine", c.ID[:12], c.Image, c.State)
		}
	}
	// Nor a process: the server, the router, the load.
	testwait.For(t, 10*time.Second, "nothing of the quickstart to run", func() bool {
		return len(processes(t, func(d string) bool {
			exe, err := os.Readlink(filepath.Join(d, "exe"))
			return err == nil && strings.HasPrefix(exe, dir+string(filepath.Separator))
		})) == 0
	})
	t.Logf("%s", text[strings.Index(text, "Summary"):])
}

// With no engine at DOCKER_HOST the quickstart says so, naming the address
// and how to point at another, before it makes or starts anything.
func TestQuickstartDockerNoEngine(t *testing.T) {
	dir := passableTempDir(t)
	sock := filepath.Join(dir, "no-engine", "docker.sock")
	cmd := exec.Command(bin.bluegreen, "quickstart", "--platform", "docker")
	cmd.Env = append(os.Environ(), "TMPDIR="+dir, "DOCKER_HOST=unix://"+sock)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if err == nil || !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("quickstart with no engine: %v (want exit code 1)\n%s", err, out)
	}
	text := strings.TrimSpace(string(out))
	for _, want := range []string{"unix://" + sock, "(from DOCKER_HOST)", "unreachable", "point DOCKER_HOST at"} {
		if !strings.Contains(text, want) {
			t.Errorf("the message lacks %q:\n%s", want, text)
		}
	}
	if n := strings.Count(text, "\n"); n > 0 {
		t.Errorf("want one line, got %d:\n%s", n+1, text)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("the quickstart made %d entries in %s before finding no engine", len(left), dir)
	}
}
