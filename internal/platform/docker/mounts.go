package docker

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/moby/api/types/mount"

	"bluegreen/internal/platform"
)

// mountsOf returns the container's mounts: each volume a read-only bind of
// a file or directory of the unpacked revision dir, and the tmpfs mounts.
// A volume whose source leaves dir, by "..", an absolute path or a symbolic
// link that points outside, is refused: the container must see nothing of
// the host but its revision.
func mountsOf(dir string, ct *platform.Container) ([]mount.Mount, error) {
	var out []mount.Mount
	if len(ct.Volumes) > 0 {
		root, err := filepath.Abs(dir)
		if err == nil {
			root, err = filepath.EvalSymlinks(root)
		}
		if err != nil {
			return nil, fmt.Errorf("volumes: the revision's directory: %w", err)
		}
		for _, v := range ct.Volumes {
			src, err := volumeSource(root, v.Source)
			if err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Source, err)
			}
			if err := checkTarget(v.Target); err != nil {
				return nil, fmt.Errorf("volume %s: %w", v.Source, err)
			}
			out = append(out, mount.Mount{Type: mount.TypeBind, Source: src, Target: v.Target, ReadOnly: true})
		}
	}
	for _, t := range ct.Tmpfs {
		if err := checkTarget(t.Target); err != nil {
			return nil, fmt.Errorf("tmpfs: %w", err)
		}
		out = append(out, mount.Mount{Type: mount.TypeTmpfs, Target: t.Target, TmpfsOptions: &mount.TmpfsOptions{SizeBytes: t.SizeBytes}})
	}
	return out, nil
}

// volumeSource resolves a volume's source against root (itself free of
// symbolic links) and makes sure the file it names is inside root.
func volumeSource(root, source string) (string, error) {
	if source == "" || filepath.IsAbs(source) {
		return "", errors.New("the source must be a path relative to the revision")
	}
	real, err := filepath.EvalSymlinks(filepath.Join(root, source))
	if errors.Is(err, fs.ErrNotExist) {
		return "", errors.New("no such file or directory in the revision")
	}
	if err != nil {
		return "", err
	}
	if real != root && !strings.HasPrefix(real, root+string(filepath.Separator)) {
		return "", errors.New("the source leads outside the revision")
	}
	return real, nil
}

// checkTarget accepts an absolute, clean path in the container other than "/".
func checkTarget(target string) error {
	if !path.IsAbs(target) || path.Clean(target) != target || target == "/" {
		return fmt.Errorf("target %q must be an absolute path in the container, other than /", target)
	}
	return nil
}
