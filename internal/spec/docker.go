package spec

import (
	"fmt"
	"math"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/distribution/reference"
)

// Docker runs each instance as a container of an image on a Docker engine.
// The container shares the host's network and listens on 127.0.0.1:$PORT,
// like a process; a bridge network with published ports would be another
// value of Network, with its own keys beside it.
type Docker struct {
	// Image is the reference the revision resolves and pins to an image ID
	// when it is created ("shop:1.2", "127.0.0.1:5000/shop@sha256:…").
	Image string `yaml:"image" json:"image"`
	// Command replaces the image's CMD, Entrypoint its ENTRYPOINT; left out
	// (or empty), the image's own are kept. ${NAME} is expanded as in
	// process.command.
	Command     []string          `yaml:"command,omitempty" json:"command,omitempty"`
	Entrypoint  []string          `yaml:"entrypoint,omitempty" json:"entrypoint,omitempty"`
	Instances   int               `yaml:"instances" json:"instances"`
	Env         map[string]string `yaml:"env" json:"env"`
	StopSignal  string            `yaml:"stop_signal" json:"stop_signal"`
	StopTimeout Duration          `yaml:"stop_timeout" json:"stop_timeout"`
	// User is "uid", "uid:gid" or a name (optionally name:group) inside
	// the image; empty runs the container as the app's user (run_as).
	User string `yaml:"user,omitempty" json:"user,omitempty"`
	// Workdir is an absolute path in the container; empty keeps the image's.
	Workdir string `yaml:"workdir,omitempty" json:"workdir,omitempty"`
	// Memory limits the container, in Docker's units ("256m", "1g"); empty
	// means no limit. See MemoryBytes.
	Memory string `yaml:"memory,omitempty" json:"memory,omitempty"`
	// CPUs limits the container's CPU time (0.5 is half a CPU); 0 means no
	// limit. See NanoCPUs.
	CPUs float64 `yaml:"cpus,omitempty" json:"cpus,omitempty"`
	// Volumes are "SOURCE:TARGET" or "SOURCE:TARGET:ro", always read-only:
	// SOURCE is a path of the bundle, TARGET an absolute path in the
	// container. See Mounts.
	Volumes []string `yaml:"volumes,omitempty" json:"volumes,omitempty"`
	// Tmpfs are writable in-memory mounts: "TARGET" or "TARGET:size=64m".
	Tmpfs []string `yaml:"tmpfs,omitempty" json:"tmpfs,omitempty"`
	// Pull says when the image is fetched from its registry: PullMissing,
	// PullAlways or PullNever.
	Pull string `yaml:"pull" json:"pull"`
	// Network is how the container is networked; only NetworkHost now.
	Network string `yaml:"network" json:"network"`
	// Auth is the registry login for pulls; nil pulls anonymously.
	Auth *RegistryAuth `yaml:"auth,omitempty" json:"auth,omitempty"`
}

// RegistryAuth is a registry login whose password is a param of the spec,
// so that the revision pins its version and the secret stays in the
// parameter store.
type RegistryAuth struct {
	Username      string `yaml:"username" json:"username"`
	PasswordParam string `yaml:"password_param" json:"password_param"`
}

// Values of docker.pull and docker.network.
const (
	PullMissing = "missing"
	PullAlways  = "always"
	PullNever   = "never"

	NetworkHost = "host"
)

// Bounds of docker.memory, docker.cpus and tmpfs sizes.
const (
	// MinMemory is the least memory limit Docker accepts.
	MinMemory = 6 << 20
	// MaxMemory bounds memory and tmpfs sizes (1024g): a typo, not a host.
	MaxMemory = 1 << 40
	// MinCPUs is the finest CPU limit Docker accepts.
	MinCPUs = 0.01
	// MaxCPUs bounds docker.cpus.
	MaxCPUs = 256
)

// dockerRefused are keys people copy from Compose files or docker run
// that would let a container reach past its own namespaces, or that this
// section spells differently. Each is refused by name, saying why.
var dockerRefused = map[string]string{
	"privileged":          "privileged containers are refused: they get every device and capability of the host",
	"pid":                 "sharing the host's process namespace is refused",
	"pid_mode":            "sharing the host's process namespace is refused",
	"ipc":                 "sharing the host's IPC namespace is refused",
	"ipc_mode":            "sharing the host's IPC namespace is refused",
	"uts":                 "sharing the host's UTS namespace is refused",
	"devices":             "host devices are refused",
	"device_cgroup_rules": "host devices are refused",
	"cap_add":             "adding capabilities is refused; containers keep Docker's default set",
	"security_opt":        "security options are refused: they can turn off seccomp, AppArmor or SELinux",
	"userns_mode":         "the user namespace mode is refused: host mode turns off user namespace remapping",
	"cgroup_parent":       "the cgroup parent is refused",
	"sysctls":             "sysctls are refused",
	"volumes_from":        "mounting another container's volumes is refused; volumes come from the bundle",
	"network_mode":        "network_mode is not used here: docker.network sets the network, and only host networking is supported",
	"ports":               "published ports need a bridge network, which is not supported: with host networking the container listens on 127.0.0.1:${PORT} itself",
}

// Image returns the docker image reference, or "" for another platform.
func (s *Spec) Image() string {
	if s.Platform != PlatformDocker || s.Docker == nil {
		return ""
	}
	return s.Docker.Image
}

// MemoryBytes returns the memory limit in bytes, 0 for none.
func (d *Docker) MemoryBytes() int64 {
	if d == nil || d.Memory == "" {
		return 0
	}
	n, _ := parseSize(d.Memory)
	return n
}

// NanoCPUs returns the CPU limit in billionths of a CPU, as the Docker API
// takes it; 0 for none.
func (d *Docker) NanoCPUs() int64 {
	if d == nil {
		return 0
	}
	return int64(math.Round(d.CPUs * 1e9))
}

// Volume is a read-only bind mount of a path of the bundle.
type Volume struct {
	Source string // relative to the bundle root, cleaned ("config", ".")
	Target string // absolute path in the container
}

// Tmpfs is a writable in-memory mount.
type Tmpfs struct {
	Target    string
	SizeBytes int64 // 0: the engine's default
}

// Mounts returns the volumes, parsed. Entries that do not parse are left
// out; Validate reports them.
func (d *Docker) Mounts() []Volume {
	if d == nil {
		return nil
	}
	var out []Volume
	for _, v := range d.Volumes {
		if vol, msg := parseVolume(v); msg == "" {
			out = append(out, vol)
		}
	}
	return out
}

// TmpfsMounts returns the tmpfs mounts, parsed. Entries that do not parse
// are left out; Validate reports them.
func (d *Docker) TmpfsMounts() []Tmpfs {
	if d == nil {
		return nil
	}
	var out []Tmpfs
	for _, t := range d.Tmpfs {
		if m, msg := parseTmpfs(t); msg == "" {
			out = append(out, m)
		}
	}
	return out
}

// containerUser is a user, optionally with a group, by name or number.
var containerUser = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,31})?$`)

func (s *Spec) validateDocker(c *collector) {
	for _, p := range s.places() {
		s.validateDockerAt(c, p)
	}
}

func (s *Spec) validateDockerAt(c *collector, pl place) {
	d := pl.docker
	if pl.platform != PlatformDocker {
		return
	}
	k := func(key string) string { return pl.at + "docker." + key }
	if d == nil {
		// Placed at an empty docker:, or where the platform was chosen.
		at, written := c.pos[pl.at+"docker"]
		if !written {
			at = c.lookup(pl.at + "platform")
		}
		c.at(at, pl.at+"docker", "is required for platform docker: at least image, the image to run (like shop:1.2)")
		return
	}
	if d.Image == "" {
		c.add(k("image"), "is required: the image to run, like shop:1.2 or registry.example.com/shop@sha256:…")
	} else if msg := imageProblem(d.Image); msg != "" {
		c.add(k("image"), "%s", msg)
	}
	argv(c, k("command"), d.Command, d.Env)
	argv(c, k("entrypoint"), d.Entrypoint, d.Env)
	if len(d.Entrypoint) > 0 && strings.TrimSpace(d.Entrypoint[0]) == "" {
		c.add(k("entrypoint[0]"), "the program name is empty")
	}
	pl.run().validate(c)
	if d.User != "" && !validContainerUser(d.User) {
		c.add(k("user"), "bad user %s: want a uid, uid:gid, or a user name (name:group) of the image", quote(d.User))
	}
	if (d.Workdir != "" || s.given[k("workdir")]) && !path.IsAbs(d.Workdir) {
		c.add(k("workdir"), "want an absolute path in the container, like /app, got %s", quote(d.Workdir))
	}
	if d.Memory != "" || s.given[k("memory")] {
		n, err := parseSize(d.Memory)
		switch {
		case err != nil:
			c.add(k("memory"), "%s", err)
		case n < MinMemory:
			c.add(k("memory"), "%s is below 6m, the least Docker accepts", quote(d.Memory))
		case n > MaxMemory:
			c.add(k("memory"), "%s is above the bound of 1024g", quote(d.Memory))
		}
	}
	if d.CPUs != 0 || s.given[k("cpus")] {
		if !(d.CPUs >= MinCPUs && d.CPUs <= MaxCPUs) {
			c.add(k("cpus"), "must be between %v and %v CPUs (0.5 is half a CPU), got %v", MinCPUs, MaxCPUs, d.CPUs)
		}
	}
	targets := map[string]string{}
	mounted := func(p, target string) {
		if other, dup := targets[target]; dup {
			c.add(p, "%s is mounted twice (also %s)", target, other)
			return
		}
		targets[target] = p
	}
	for i, v := range d.Volumes {
		p := fmt.Sprintf("%svolumes[%d]", k(""), i)
		vol, msg := parseVolume(v)
		if msg != "" {
			c.add(p, "%s", msg)
			continue
		}
		mounted(p, vol.Target)
	}
	for i, t := range d.Tmpfs {
		p := fmt.Sprintf("%stmpfs[%d]", k(""), i)
		m, msg := parseTmpfs(t)
		if msg != "" {
			c.add(p, "%s", msg)
			continue
		}
		mounted(p, m.Target)
	}
	oneOf(c, k("pull"), d.Pull, PullMissing, PullAlways, PullNever)
	if d.Network != NetworkHost {
		c.add(k("network"), "only host networking is supported (the container listens on 127.0.0.1:${PORT}), got %s", quote(d.Network))
	}
	if a := d.Auth; a != nil {
		switch {
		case a.Username == "":
			c.add(k("auth.username"), "is required: the registry user")
		case strings.ContainsFunc(a.Username, func(r rune) bool { return r <= ' ' || r == 0x7f }):
			c.add(k("auth.username"), "bad user name %s: no spaces or control characters", quote(a.Username))
		}
		switch {
		case a.PasswordParam == "":
			c.add(k("auth.password_param"), "is required: the param holding the registry password, one of params:")
		case !slices.Contains(s.Params, a.PasswordParam):
			c.add(k("auth.password_param"), "%s is not one of the spec's params (add it to params:, so that each revision pins its version)", quote(a.PasswordParam))
		}
	}
}

// imageProblem says what is wrong with an image reference, or "".
func imageProblem(ref string) string {
	const want = "want a name like shop:1.2, registry.example.com:5000/team/shop:1.2 or shop@sha256:…"
	if id := strings.TrimPrefix(ref, "sha256:"); len(id) == 64 && strings.Trim(id, "0123456789abcdef") == "" {
		return fmt.Sprintf("%s is an image ID, not a reference: name the image, like shop:1.2 (each revision pins the ID the name has when it is created)", quote(ref))
	}
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return fmt.Sprintf("bad image reference %s: %v; %s", quote(ref), err, want)
	}
	return ""
}

func validContainerUser(u string) bool {
	if !containerUser.MatchString(u) {
		return false
	}
	for part := range strings.SplitSeq(u, ":") {
		if strings.Trim(part, "0123456789") == "" {
			if _, err := strconv.ParseUint(part, 10, 32); err != nil {
				return false
			}
		}
	}
	return true
}

// sizeUnits are Docker's size suffixes, powers of 1024.
var sizeUnits = map[byte]int64{'b': 1, 'k': 1 << 10, 'm': 1 << 20, 'g': 1 << 30}

var (
	sizePattern    = regexp.MustCompile(`^([0-9]{1,13})([bkmgBKMG])$`)
	foreignPattern = regexp.MustCompile(`^([0-9]+)\s*([kKmMgGtT])(i|iB|B|b)?$`)
)

// parseSize reads a size in Docker's units: a whole number and b, k, m or g.
func parseSize(s string) (int64, error) {
	m := sizePattern.FindStringSubmatch(s)
	if m == nil {
		hint := ""
		if f := foreignPattern.FindStringSubmatch(s); f != nil {
			hint = fmt.Sprintf(" (write %s%s)", f[1], strings.ToLower(f[2]))
			if strings.EqualFold(f[2], "t") {
				hint = " (write it in g)"
			}
		}
		return 0, fmt.Errorf("bad size %s%s: want a whole number and a unit of b, k, m or g (powers of 1024, as Docker counts), like 256m or 1g", quote(s), hint)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n * sizeUnits[strings.ToLower(m[2])[0]], nil
}

// parseVolume reads "SOURCE:TARGET" or "SOURCE:TARGET:ro", or says what is
// wrong with it.
func parseVolume(s string) (Volume, string) {
	parts := strings.Split(s, ":")
	if len(parts) == 3 {
		switch parts[2] {
		case "ro":
		case "rw":
			return Volume{}, fmt.Sprintf("%s: volumes are read-only; write SOURCE:TARGET or SOURCE:TARGET:ro, and use tmpfs for scratch space", quote(s))
		default:
			return Volume{}, fmt.Sprintf("%s: unknown mode %s; volumes are read-only, write SOURCE:TARGET or SOURCE:TARGET:ro", quote(s), quote(parts[2]))
		}
	} else if len(parts) != 2 {
		return Volume{}, fmt.Sprintf("want SOURCE:TARGET or SOURCE:TARGET:ro, got %s", quote(s))
	}
	src, target := parts[0], parts[1]
	switch {
	case src == "":
		return Volume{}, fmt.Sprintf("%s: SOURCE is empty; want a path of the bundle, like config (or . for all of it)", quote(s))
	case path.IsAbs(src):
		return Volume{}, fmt.Sprintf("%s: SOURCE must be a path of the bundle, relative to its root; host paths are not mounted", quote(s))
	case slices.Contains(strings.Split(src, "/"), ".."):
		return Volume{}, fmt.Sprintf("%s: SOURCE must stay inside the bundle; no .. in it", quote(s))
	}
	if msg := targetProblem(target); msg != "" {
		return Volume{}, fmt.Sprintf("%s: %s", quote(s), msg)
	}
	return Volume{Source: path.Clean(src), Target: path.Clean(target)}, ""
}

// parseTmpfs reads "TARGET" or "TARGET:size=64m", or says what is wrong
// with it.
func parseTmpfs(s string) (Tmpfs, string) {
	target, opts, hasOpts := strings.Cut(s, ":")
	if msg := targetProblem(target); msg != "" {
		return Tmpfs{}, fmt.Sprintf("%s: %s", quote(s), msg)
	}
	t := Tmpfs{Target: path.Clean(target)}
	if !hasOpts {
		return t, ""
	}
	size, ok := strings.CutPrefix(opts, "size=")
	if !ok || strings.Contains(size, ",") {
		return Tmpfs{}, fmt.Sprintf("%s: the only option is size (TARGET:size=64m), got %s", quote(s), quote(opts))
	}
	n, err := parseSize(size)
	switch {
	case err != nil:
		return Tmpfs{}, fmt.Sprintf("%s: %v", quote(s), err)
	case n == 0:
		return Tmpfs{}, fmt.Sprintf("%s: size must be above 0; leave it out for the engine's default", quote(s))
	case n > MaxMemory:
		return Tmpfs{}, fmt.Sprintf("%s: size is above the bound of 1024g", quote(s))
	}
	t.SizeBytes = n
	return t, ""
}

// targetProblem says what is wrong with a mount point in the container.
func targetProblem(target string) string {
	switch {
	case !path.IsAbs(target):
		return fmt.Sprintf("TARGET %s must be an absolute path in the container, like /app/config", quote(target))
	case path.Clean(target) == "/":
		return "TARGET cannot be / (the container's root)"
	}
	return ""
}
