package testk8s

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Images without a registry: a static binary is packed into an image as
// `docker save` writes one (a docker-archive tar of one layer, the binary
// as /app, its entrypoint) and imported into the node's containerd, where
// pods run it with imagePullPolicy Never.

var packed struct {
	mu  sync.Mutex
	dir string
}

// packDir returns the directory the packed images go to.
func packDir() (string, error) {
	packed.mu.Lock()
	defer packed.mu.Unlock()
	if packed.dir == "" {
		dir, err := os.MkdirTemp("", "bluegreen-testk8s-")
		if err != nil {
			return "", err
		}
		packed.dir = dir
	}
	return packed.dir, nil
}

func removePacked() {
	packed.mu.Lock()
	defer packed.mu.Unlock()
	if packed.dir != "" {
		os.RemoveAll(packed.dir)
		packed.dir = ""
	}
}

// Pack writes the image of binary, named ref, as a docker-archive tar at
// path and returns the image's ID (the digest of its configuration,
// "sha256:…"), which is the same for the same content. files are more files
// of the image by absolute path ({"/VERSION": "v2\n"}, mode 0644).
func Pack(binary, ref, path string, files map[string]string) (string, error) {
	bin, err := os.ReadFile(binary)
	if err != nil {
		return "", err
	}
	var layer bytes.Buffer
	lw := tar.NewWriter(&layer)
	addFile := func(name string, mode int64, data []byte) error {
		if err := lw.WriteHeader(&tar.Header{Name: name, Mode: mode, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := lw.Write(data)
		return err
	}
	if err := addFile("app", 0o755, bin); err != nil {
		return "", err
	}
	for _, name := range slices.Sorted(maps.Keys(files)) {
		if !strings.HasPrefix(name, "/") || strings.Count(name, "/") != 1 {
			return "", fmt.Errorf("file %q: want a file of the image's root, like /VERSION", name)
		}
		if err := addFile(name[1:], 0o644, []byte(files[name])); err != nil {
			return "", err
		}
	}
	if err := lw.Close(); err != nil {
		return "", err
	}
	diff := sha256.Sum256(layer.Bytes())
	diffHex := hex.EncodeToString(diff[:])
	config, err := json.Marshal(map[string]any{
		"architecture": runtime.GOARCH,
		"os":           "linux",
		"config":       map[string]any{"Entrypoint": []string{"/app"}, "Env": []string{"PATH=/"}, "WorkingDir": "/"},
		"rootfs":       map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + diffHex}},
	})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(config)
	configHex := hex.EncodeToString(sum[:])
	manifest, err := json.Marshal([]map[string]any{{
		"Config": configHex + ".json", "RepoTags": []string{ref}, "Layers": []string{diffHex + "/layer.tar"},
	}})
	if err != nil {
		return "", err
	}

	var out bytes.Buffer
	tw := tar.NewWriter(&out)
	add := func(name string, data []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), ModTime: time.Unix(0, 0), Typeflag: tar.TypeReg}); err != nil {
			return err
		}
		_, err := tw.Write(data)
		return err
	}
	for _, f := range []struct {
		name string
		data []byte
	}{{"manifest.json", manifest}, {configHex + ".json", config}, {diffHex + "/layer.tar", layer.Bytes()}} {
		if err := add(f.name, f.data); err != nil {
			return "", err
		}
	}
	if err := tw.Close(); err != nil {
		return "", err
	}
	if err := os.WriteFile(path, out.Bytes(), 0o644); err != nil {
		return "", err
	}
	return "sha256:" + configHex, nil
}

// importTar imports a docker-archive into the node's containerd, where the
// kubelet finds it.
func (c *Cluster) importTar(path string) error {
	out, err := exec.Command("ctr", "--address", c.containerdSocket(), "-n", "k8s.io", "images", "import", path).CombinedOutput()
	if err != nil {
		return fmt.Errorf("importing %s into containerd: %v\n%s", path, err, out)
	}
	return nil
}

// ImportBinary packs the static binary as an image named ref, imports it
// into the node's containerd and returns the image's ID.
func (c *Cluster) ImportBinary(t testing.TB, binary, ref string) string {
	t.Helper()
	return c.ImportImage(t, binary, ref, nil)
}

// ImportImage is ImportBinary with more files in the image (see Pack).
func (c *Cluster) ImportImage(t testing.TB, binary, ref string, files map[string]string) string {
	t.Helper()
	id, err := c.Import(binary, ref, files)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// Import packs the static binary and files as an image named ref, imports
// it into the node's containerd and returns the image's ID.
func (c *Cluster) Import(binary, ref string, files map[string]string) (string, error) {
	dir, err := packDir()
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
	id, err := Pack(binary, ref, path, files)
	if err != nil {
		return "", fmt.Errorf("packing %s as image %s: %v", binary, ref, err)
	}
	return id, c.importTar(path)
}

// RemoveImage removes ref from the node's containerd.
func (c *Cluster) RemoveImage(t testing.TB, ref string) {
	t.Helper()
	out, err := exec.Command("ctr", "--address", c.containerdSocket(), "-n", "k8s.io", "images", "rm", "--sync", ref).CombinedOutput()
	if err != nil {
		t.Fatalf("removing image %s from containerd: %v\n%s", ref, err, out)
	}
}

// ForgetImage removes every name of the image with ID id from the node's
// containerd (its reference and the ID the CRI keeps as a name too), so
// that the kubelet no longer finds it, as on a node that never had it.
func (c *Cluster) ForgetImage(t testing.TB, id string) {
	t.Helper()
	out, err := exec.Command("ctr", "--address", c.containerdSocket(), "-n", "k8s.io", "images", "ls").CombinedOutput()
	if err != nil {
		t.Fatalf("listing containerd's images: %v\n%s", err, out)
	}
	// The CRI names the image by its ID as well: every name whose
	// manifest is the one that name points at goes.
	var rows [][]string
	manifest := ""
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) >= 3 {
			rows = append(rows, f)
			if f[0] == id {
				manifest = f[2]
			}
		}
	}
	if manifest == "" {
		t.Fatalf("containerd has no image named %s:\n%s", id, out)
	}
	for _, f := range rows {
		if f[2] == manifest {
			c.RemoveImage(t, f[0])
		}
	}
}

// importPause builds ./pause as a static binary and imports it as the
// pods' sandbox image.
func (c *Cluster) importPause() error {
	bin := filepath.Join(c.Dir, "pause")
	cmd := exec.Command("go", "build", "-trimpath", "-o", bin, "bluegreen/internal/testk8s/pause")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("building the pause program: %v\n%s", err, out)
	}
	path := filepath.Join(c.Dir, "pause.tar")
	if _, err := Pack(bin, pauseRef, path, nil); err != nil {
		return err
	}
	return c.importTar(path)
}
