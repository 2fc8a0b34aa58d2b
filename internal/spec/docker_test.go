package spec

import (
	"os"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseDocker(t *testing.T) {
	s, err := ParseFile("testdata/docker.yaml")
	if err != nil {
		t.Fatal(err)
	}
	d := s.Docker
	if s.Platform != PlatformDocker || s.Process != nil || d == nil {
		t.Fatalf("platform %q, process %v, docker %v", s.Platform, s.Process, d)
	}
	if s.Image() != "127.0.0.1:5000/shop:2.1" {
		t.Errorf("Image() = %q", s.Image())
	}
	if strings.Join(d.Entrypoint, " ") != "/shop" || strings.Join(d.Command, " ") != "--listen 127.0.0.1:${PORT}" {
		t.Errorf("entrypoint %q, command %q", d.Entrypoint, d.Command)
	}
	if d.User != "1000:1000" || d.Workdir != "/srv" || d.Pull != PullAlways || d.Network != NetworkHost {
		t.Errorf("user %q, workdir %q, pull %q, network %q", d.User, d.Workdir, d.Pull, d.Network)
	}
	if d.MemoryBytes() != 256<<20 || d.NanoCPUs() != 500_000_000 {
		t.Errorf("MemoryBytes() = %d, NanoCPUs() = %d", d.MemoryBytes(), d.NanoCPUs())
	}
	wantVolumes := []Volume{{"config", "/etc/shop"}, {"static", "/srv/static"}}
	if got := d.Mounts(); !reflect.DeepEqual(got, wantVolumes) {
		t.Errorf("Mounts() = %+v, want %+v", got, wantVolumes)
	}
	wantTmpfs := []Tmpfs{{"/tmp", 64 << 20}, {"/run", 0}}
	if got := d.TmpfsMounts(); !reflect.DeepEqual(got, wantTmpfs) {
		t.Errorf("TmpfsMounts() = %+v, want %+v", got, wantTmpfs)
	}
	if d.Auth == nil || d.Auth.Username != "ci" || d.Auth.PasswordParam != "/shop/REGISTRY_PASSWORD" {
		t.Errorf("auth %+v", d.Auth)
	}
	want := Workload{Instances: 2, Env: map[string]string{"GOMAXPROCS": "1"}, Command: d.Command, StopSignal: "SIGINT", StopTimeout: Duration(20 * time.Second)}
	if got := s.Workload(); !reflect.DeepEqual(got, want) {
		t.Errorf("Workload() = %+v, want %+v", got, want)
	}
}

// TestDockerDefaults pins the effective spec of a minimal docker file.
func TestDockerDefaults(t *testing.T) {
	s, err := ParseFile("testdata/docker-minimal.yaml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	checkGolden(t, "testdata/docker-minimal.effective.yaml", string(out))
	d := s.Docker
	if d.Instances != DefaultInstances || d.StopSignal != DefaultStopSignal || d.StopTimeout.D() != DefaultStopTimeout ||
		d.Pull != DefaultPull || d.Network != DefaultNetwork {
		t.Errorf("defaults not applied: %+v", d)
	}
	if d.MemoryBytes() != 0 || d.NanoCPUs() != 0 || d.Mounts() != nil || d.TmpfsMounts() != nil || d.Command != nil || d.Entrypoint != nil {
		t.Errorf("limits, mounts or overrides where none were written: %+v", d)
	}
}

func TestValidDocker(t *testing.T) {
	cases := []struct {
		name, yaml string
		check      func(*Docker) bool
	}{
		{"image without a tag", "  image: hello\n", func(d *Docker) bool { return d.Image == "hello" }},
		{"image with a registry and a path", "  image: registry.example.com:5000/team/shop:1.2-rc.1\n", nil},
		{"image on localhost", "  image: localhost/shop\n", nil},
		{"image with a digest", "  image: shop@sha256:" + strings.Repeat("0", 64) + "\n", nil},
		{"image with a tag and a digest", "  image: shop:2@sha256:" + strings.Repeat("a", 64) + "\n", nil},
		{"image of numbers", "  image: \"123\"\n", func(d *Docker) bool { return d.Image == "123" }},
		{"memory at docker's least", "  memory: 6m\n", func(d *Docker) bool { return d.MemoryBytes() == 6<<20 }},
		{"memory in gigabytes", "  memory: 2g\n", func(d *Docker) bool { return d.MemoryBytes() == 2<<30 }},
		{"memory in upper case", "  memory: 512M\n", func(d *Docker) bool { return d.MemoryBytes() == 512<<20 }},
		{"memory in kilobytes", "  memory: 8192k\n", func(d *Docker) bool { return d.MemoryBytes() == 8<<20 }},
		{"memory in bytes", "  memory: 1073741824b\n", func(d *Docker) bool { return d.MemoryBytes() == 1<<30 }},
		{"memory at the bound", "  memory: 1024g\n", func(d *Docker) bool { return d.MemoryBytes() == MaxMemory }},
		{"cpus whole", "  cpus: 2\n", func(d *Docker) bool { return d.NanoCPUs() == 2e9 }},
		{"cpus least", "  cpus: 0.01\n", func(d *Docker) bool { return d.NanoCPUs() == 1e7 }},
		{"cpus fraction", "  cpus: 1.25\n", func(d *Docker) bool { return d.NanoCPUs() == 1_250_000_000 }},
		{"user uid", "  user: \"1000\"\n", func(d *Docker) bool { return d.User == "1000" }},
		{"user uid unquoted", "  user: 1000\n", func(d *Docker) bool { return d.User == "1000" }},
		{"user name", "  user: nobody\n", nil},
		{"user name and group", "  user: app:staff\n", nil},
		{"whole bundle as a volume", "  volumes: [\".:/app\"]\n", func(d *Docker) bool { return reflect.DeepEqual(d.Mounts(), []Volume{{".", "/app"}}) }},
		{"volume target cleaned", "  volumes: [\"conf/:/etc/shop/:ro\"]\n", func(d *Docker) bool { return reflect.DeepEqual(d.Mounts(), []Volume{{"conf", "/etc/shop"}}) }},
		{"volume file", "  volumes: [\"config/shop.toml:/etc/shop.toml\"]\n", nil},
		{"tmpfs without size", "  tmpfs: [/tmp]\n", func(d *Docker) bool { return reflect.DeepEqual(d.TmpfsMounts(), []Tmpfs{{"/tmp", 0}}) }},
		{"tmpfs in kilobytes", "  tmpfs: [\"/tmp:size=512k\"]\n", func(d *Docker) bool { return d.TmpfsMounts()[0].SizeBytes == 512<<10 }},
		{"pull never", "  pull: never\n", func(d *Docker) bool { return d.Pull == PullNever }},
		{"network host written", "  network: host\n", func(d *Docker) bool { return d.Network == NetworkHost }},
		{"command without entrypoint", "  command: [serve, --port, \"${PORT}\"]\n", func(d *Docker) bool { return len(d.Command) == 3 && d.Entrypoint == nil }},
		{"empty command keeps the image's", "  command: []\n  entrypoint: []\n", func(d *Docker) bool { return d.Command == nil && d.Entrypoint == nil }},
		{"empty arguments", "  command: [\"\", x]\n", nil},
		{"shell in the container", "  entrypoint: [sh, -c]\n  command: [\"exec /shop --port $$PORT\"]\n", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			src := "app: shop\nplatform: docker\ndocker:\n"
			if !strings.HasPrefix(tc.yaml, "  image:") {
				src += "  image: shop:1\n"
			}
			src += tc.yaml
			s := mustParse(t, src)
			if tc.check != nil && !tc.check(s.Docker) {
				out, _ := s.Marshal()
				t.Errorf("unexpected spec:\n%s", out)
			}
			roundTrip(t, []byte(src))
		})
	}
}

// Workload reads whichever section the platform uses, with its defaults;
// a spec built in Go gets the same.
func TestWorkload(t *testing.T) {
	s := mustParse(t, base+"  instances: 3\n  env: {A: b}\n  stop_timeout: 5s\n")
	want := Workload{Instances: 3, Env: map[string]string{"A": "b"}, Command: []string{"./shop"}, StopSignal: "SIGTERM", StopTimeout: Duration(5 * time.Second)}
	if got := s.Workload(); !reflect.DeepEqual(got, want) {
		t.Errorf("process: Workload() = %+v, want %+v", got, want)
	}
	if s.Image() != "" {
		t.Errorf("process: Image() = %q", s.Image())
	}
	d := mustParse(t, dockerBase)
	want = Workload{Instances: 1, StopSignal: "SIGTERM", StopTimeout: Duration(DefaultStopTimeout)}
	if got := d.Workload(); !reflect.DeepEqual(got, want) {
		t.Errorf("docker: Workload() = %+v, want %+v", got, want)
	}
	g := &Spec{App: "shop", Platform: PlatformDocker, Docker: &Docker{Image: "shop:1", Instances: 2}}
	g.ApplyDefaults()
	if err := g.Validate(); err != nil {
		t.Fatalf("Validate: %v", err)
	}
	if w := g.Workload(); w.Instances != 2 || w.StopSignal != DefaultStopSignal || g.Docker.Pull != DefaultPull {
		t.Errorf("built in Go: Workload() = %+v, docker %+v", w, g.Docker)
	}
	if w := (&Spec{Platform: PlatformDocker}).Workload(); !reflect.DeepEqual(w, Workload{}) {
		t.Errorf("no section: Workload() = %+v", w)
	}
}

// A spec built in Go that names the wrong section gets the cross rule too,
// without a position.
func TestCrossRulesBuiltInGo(t *testing.T) {
	s := &Spec{App: "shop", Platform: PlatformDocker, Process: &Process{Command: []string{"./shop"}}}
	s.ApplyDefaults()
	err := s.Validate()
	want := "process: given, but platform is docker (remove the section, or set platform: process)\n" +
		"docker: is required for platform docker: at least image, the image to run (like shop:1.2)"
	if err == nil || err.Error() != want {
		t.Fatalf("Validate =\n%v\nwant\n%s", err, want)
	}
}

func TestDockerRoundTrip(t *testing.T) {
	for _, file := range []string{"testdata/docker.yaml", "testdata/docker-minimal.yaml"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		roundTrip(t, src)
	}
}
