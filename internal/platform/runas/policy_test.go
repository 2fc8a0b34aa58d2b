package runas

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"bluegreen/internal/platform"
)

// The machine's accounts as these tests see them.
var accounts = map[string]platform.User{
	"root":   {Name: "root", UID: 0, GID: 0, Home: "/root"},
	"alice":  {Name: "alice", UID: 1000, GID: 1000, Home: "/home/alice"},
	"nobody": {Name: "nobody", UID: 65534, GID: 65534, Home: "/nonexistent"},
	"www":    {Name: "www", UID: 33, GID: 33, Groups: []uint32{107}, Home: "/var/www"},
}

func fakeLookup(name string) (platform.User, error) {
	if u, ok := accounts[name]; ok {
		return u, nil
	}
	return platform.User{}, fmt.Errorf("no such user %q", name)
}

// testHost is a machine where the server runs as self, in a user
// namespace that maps everything.
func testHost(t *testing.T, self string) host {
	mapFile := filepath.Join(t.TempDir(), "uid_map")
	if err := os.WriteFile(mapFile, []byte("         0          0 4294967295\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return host{self: accounts[self], lookup: fakeLookup, uidMap: mapFile}
}

// passableDir is a temporary data directory every user may reach: the
// test's own temporary directory is closed to others.
func passableDir(t *testing.T) string {
	dir := t.TempDir()
	for d := dir; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		if err := os.Chmod(d, 0o711); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// A server that is not root cannot switch users: asking it to, at start or
// in a spec, is refused with what to do instead, never run as itself.
func TestRefusedWhenTheServerIsNotRoot(t *testing.T) {
	h := testHost(t, "alice")
	for _, runAs := range []string{Dynamic, "nobody", "root"} {
		_, err := newPolicy(Config{RunAs: runAs, DataDir: t.TempDir()}, h)
		if err == nil || !strings.Contains(err.Error(), "not root") || !strings.Contains(err.Error(), "--run-as "+runAs) {
			t.Errorf("--run-as %s on a server running as alice: %v, want a refusal naming the flag", runAs, err)
		}
	}
	if _, err := newPolicy(Config{Allow: []string{"www"}, DataDir: t.TempDir()}, h); err == nil || !strings.Contains(err.Error(), "--allow-run-as www") {
		t.Errorf("--allow-run-as www on a server running as alice: %v, want a refusal", err)
	}
	p, err := newPolicy(Config{DataDir: t.TempDir()}, h)
	if err != nil {
		t.Fatal(err)
	}
	if u, err := p.Resolve("shop", ""); err != nil || u.UID != 1000 {
		t.Fatalf("default user: %v, %v; want the server's own", u, err)
	}
	if p.Isolated() || !strings.Contains(p.Describe(), "server's own user alice") {
		t.Errorf("Describe = %q, Isolated = %v; want the server's own user, not isolated", p.Describe(), p.Isolated())
	}
	_, err = p.Resolve("shop", "nobody")
	var refused *Refusal
	if !errors.As(err, &refused) || !strings.Contains(err.Error(), "cannot start processes as nobody (uid 65534)") ||
		!strings.Contains(err.Error(), "remove run_as") {
		t.Fatalf("run_as nobody on a server running as alice: %v, want a refusal saying why and what to do", err)
	}
	if u, err := p.Resolve("shop", "alice"); err != nil || u.UID != 1000 {
		t.Fatalf("run_as naming the server's own user: %v, %v", u, err)
	}
	if _, err := p.Resolve("shop", "mallory"); !errors.As(err, &refused) || !strings.Contains(err.Error(), `no such user "mallory"`) {
		t.Fatalf("run_as of an unknown user: %v", err)
	}
}

func TestRootServerPolicies(t *testing.T) {
	h := testHost(t, "root")
	var refused *Refusal

	t.Run("dynamic by default, one stable user per app", func(t *testing.T) {
		data := t.TempDir()
		p, err := newPolicy(Config{DataDir: data}, h)
		if err != nil {
			t.Fatal(err)
		}
		shop, err := p.Resolve("shop", "")
		if err != nil {
			t.Fatal(err)
		}
		blog, err := p.Resolve("blog", "")
		if err != nil {
			t.Fatal(err)
		}
		if shop.UID < DynamicFirst || shop.UID > DynamicLast || shop.GID != shop.UID || len(shop.Groups) != 0 || shop.Name != "" {
			t.Fatalf("shop's user %+v: want an ID of the dynamic range, its own group, no other groups", shop)
		}
		if blog.UID == shop.UID {
			t.Fatalf("shop and blog share uid %d", shop.UID)
		}
		// A restarted server gives each app the same user.
		again, err := newPolicy(Config{DataDir: data}, h)
		if err != nil {
			t.Fatal(err)
		}
		for app, want := range map[string]uint32{"shop": shop.UID, "blog": blog.UID} {
			if u, err := again.Resolve(app, ""); err != nil || u.UID != want {
				t.Errorf("after a restart %s runs as %v (%v), want uid %d", app, u, err, want)
			}
		}
		if !p.Isolated() {
			t.Error("dynamic users are not reported as isolated")
		}
		// Apps may not choose root, nor anyone, unless allowed.
		for _, name := range []string{"root", "nobody"} {
			if _, err := p.Resolve("shop", name); !errors.As(err, &refused) || !strings.Contains(err.Error(), "--allow-run-as lists no users") {
				t.Errorf("run_as %s without --allow-run-as: %v, want a refusal", name, err)
			}
		}
	})

	t.Run("a damaged record of users is an error, not a fresh start", func(t *testing.T) {
		data := t.TempDir()
		if err := os.WriteFile(filepath.Join(data, StateFile), []byte("{not json"), 0o600); err != nil {
			t.Fatal(err)
		}
		p, err := newPolicy(Config{DataDir: data}, h)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.Resolve("shop", ""); err == nil || !strings.Contains(err.Error(), StateFile) {
			t.Fatalf("Resolve over a damaged %s: %v", StateFile, err)
		}
	})

	t.Run("dynamic users need their IDs mapped", func(t *testing.T) {
		hh := h
		hh.uidMap = filepath.Join(t.TempDir(), "uid_map")
		if err := os.WriteFile(hh.uidMap, []byte("         0     100000      65536\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := newPolicy(Config{DataDir: t.TempDir()}, hh); err != nil {
			t.Fatalf("a namespace mapping 0-65535: %v", err)
		}
		if err := os.WriteFile(hh.uidMap, []byte("         0     100000      1000\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := newPolicy(Config{DataDir: t.TempDir()}, hh)
		if err == nil || !strings.Contains(err.Error(), "not mapped") || !strings.Contains(err.Error(), "--run-as USER") {
			t.Fatalf("a namespace mapping 0-999: %v, want a refusal naming the way out", err)
		}
	})

	t.Run("one named user, others allowed by name", func(t *testing.T) {
		p, err := newPolicy(Config{RunAs: "nobody", Allow: []string{"www"}, DataDir: passableDir(t)}, h)
		if err != nil {
			t.Fatal(err)
		}
		if u, err := p.Resolve("shop", ""); err != nil || u.UID != 65534 {
			t.Fatalf("default: %v, %v", u, err)
		}
		if u, err := p.Resolve("shop", "www"); err != nil || u.UID != 33 || len(u.Groups) != 1 {
			t.Fatalf("run_as www (allowed): %+v, %v", u, err)
		}
		if u, err := p.Resolve("shop", "nobody"); err != nil || u.UID != 65534 {
			t.Fatalf("run_as naming the server's --run-as: %v, %v", u, err)
		}
		_, err = p.Resolve("shop", "alice")
		if !errors.As(err, &refused) || !strings.Contains(err.Error(), "does not let apps run as alice (uid 1000)") ||
			!strings.Contains(err.Error(), "lists www") {
			t.Fatalf("run_as alice (not allowed): %v", err)
		}
	})

	t.Run("root only when asked for by name", func(t *testing.T) {
		p, err := newPolicy(Config{RunAs: "root", DataDir: t.TempDir()}, h)
		if err != nil {
			t.Fatal(err)
		}
		if u, err := p.Resolve("shop", ""); err != nil || u.UID != 0 {
			t.Fatalf("--run-as root: %v, %v", u, err)
		}
		if p.Isolated() || !strings.Contains(p.Describe(), "root") {
			t.Errorf("--run-as root: Describe %q, Isolated %v", p.Describe(), p.Isolated())
		}
		if c := p.Credential(platform.User{}); c != nil {
			t.Errorf("running as root from root switches identity: %+v", c)
		}
	})
}

// The data directory: the server's files closed, revisions/ passable, and
// a data directory the apps' users cannot reach refused with the directory
// that stops them.
func TestPrepareDataDir(t *testing.T) {
	h := testHost(t, "root")
	data := passableDir(t)
	for name, mode := range map[string]os.FileMode{"admin.token": 0o600, "bluegreen.db": 0o644, "server.json": 0o640} {
		if err := os.WriteFile(filepath.Join(data, name), []byte("x"), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(data, "bundles"), 0o755); err != nil {
		t.Fatal(err)
	}
	p, err := newPolicy(Config{DataDir: data}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PrepareDataDir(); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{".": 0o711, RevisionsDir: 0o711, "admin.token": 0o600,
		"bluegreen.db": 0o600, "server.json": 0o600, "bundles": 0o700} {
		info, err := os.Stat(filepath.Join(data, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s: mode %04o, want %04o", name, got, want)
		}
	}

	parent := filepath.Join(t.TempDir(), "private")
	closed := filepath.Join(parent, "data")
	if err := os.MkdirAll(closed, 0o700); err != nil {
		t.Fatal(err)
	}
	p, err = newPolicy(Config{DataDir: closed}, h)
	if err != nil {
		t.Fatal(err)
	}
	err = p.PrepareDataDir()
	if err == nil || !strings.Contains(err.Error(), "cannot reach") || !strings.Contains(err.Error(), parent+" has mode 0700") ||
		!strings.Contains(err.Error(), "--run-as root") {
		t.Fatalf("a data directory under %s (0700): %v, want a refusal naming it", parent, err)
	}
}

func TestRevisionDirAndTree(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("changing a directory's group needs root")
	}
	h := testHost(t, "root")
	data := passableDir(t)
	p, err := newPolicy(Config{DataDir: data}, h)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.PrepareDataDir(); err != nil {
		t.Fatal(err)
	}
	u, err := p.Resolve("shop", "")
	if err != nil {
		t.Fatal(err)
	}
	gen := filepath.Join(data, RevisionsDir, "shop", "1")
	if err := p.PrepareRevisionDir(gen, u); err != nil {
		t.Fatal(err)
	}
	for dir, want := range map[string]struct {
		mode os.FileMode
		gid  uint32
	}{filepath.Dir(gen): {0o711, 0}, gen: {0o750, u.GID}} {
		info, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		st := info.Sys().(*syscall.Stat_t)
		if info.Mode().Perm() != want.mode || st.Uid != 0 || st.Gid != want.gid {
			t.Errorf("%s: mode %04o, owner %d:%d; want %04o, 0:%d", dir, info.Mode().Perm(), st.Uid, st.Gid, want.mode, want.gid)
		}
	}
	if err := Reach(gen, u); err != nil {
		t.Fatalf("the revision's user cannot reach it: %v", err)
	}
	other, err := p.Resolve("blog", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := Reach(gen, other); err == nil || !strings.Contains(err.Error(), gen+" has mode 0750") {
		t.Fatalf("another app's user reaches shop's revision: %v", err)
	}
	// Another user for the same revision (a changed policy) takes it over.
	if err := p.PrepareRevisionDir(gen, other); err != nil {
		t.Fatal(err)
	}
	if err := Reach(gen, other); err != nil {
		t.Fatalf("after the change of user: %v", err)
	}

	files := map[string]os.FileMode{"key.pem": 0o600, "run.sh": 0o755, "open.txt": 0o666}
	if err := os.MkdirAll(filepath.Join(gen, "private"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, mode := range files {
		if err := os.WriteFile(filepath.Join(gen, name), nil, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(gen, name), mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := ShareTree(gen); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]os.FileMode{".": 0o750, "key.pem": 0o604, "run.sh": 0o755, "open.txt": 0o664, "private": 0o705} {
		info, err := os.Stat(filepath.Join(gen, name))
		if err != nil {
			t.Fatal(err)
		}
		if got := info.Mode().Perm(); got != want {
			t.Errorf("%s after ShareTree: %04o, want %04o", name, got, want)
		}
	}
}
