package spec

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
)

// CheckBundle checks the spec against the bundle it will run from: every hook
// and command check whose first word is a relative path (./hooks/smoke.sh)
// must be an executable file inside the bundle, and so must a process's
// program; every docker volume's source must exist in the bundle without
// leaving it through a symlink. The spec's positions are kept, so problems
// point at the line. The error is an *Errors or nil.
func (s *Spec) CheckBundle(fsys fs.FS) error {
	c := &collector{file: s.file, pos: s.pos}
	check := func(p, run string) {
		if msg := bundleFileProblem(fsys, run); msg != "" {
			c.add(p, "%s", msg)
		}
	}
	for _, pl := range s.places() {
		checkBundlePlace(fsys, c, pl)
	}
	for _, ev := range s.Hooks.Events() {
		for i, h := range ev.Hooks {
			check(hookPath(ev.Name, i)+".run", h.Run)
		}
	}
	for _, name := range s.StackOrder() {
		if sv := s.Services[name]; sv != nil && sv.Hooks != nil {
			for _, ev := range sv.Hooks.Events() {
				for i, h := range ev.Hooks {
					check("services."+name+"."+hookPath(ev.Name, i)+".run", h.Run)
				}
			}
		}
	}
	for i, r := range s.Checks.Rules {
		if r.Command != nil {
			check(rulePath(i)+".command.run", r.Command.Run)
		}
	}
	return c.err()
}

// checkBundlePlace checks a run section against the bundle: the sources
// of docker volumes, and the program of a process.
func checkBundlePlace(fsys fs.FS, c *collector, pl place) {
	if pl.platform == PlatformDocker && pl.docker != nil {
		for i, v := range pl.docker.Volumes {
			if vol, msg := parseVolume(v); msg == "" {
				if msg := bundleSourceProblem(fsys, vol.Source); msg != "" {
					c.add(fmt.Sprintf("%sdocker.volumes[%d]", pl.at, i), "%s", msg)
				}
			}
		}
	}
	if p := pl.process; p != nil && pl.platform == PlatformProcess && len(p.Command) > 0 && !strings.Contains(p.Command[0], "${") {
		// The command runs in process.dir; a program named by a path must
		// be in the bundle, as the instance would find out at launch.
		prog := p.Command[0]
		if !path.IsAbs(prog) && strings.Contains(prog, "/") && p.Dir != "" {
			prog = "./" + path.Join(p.Dir, prog)
		}
		if msg := bundleFileProblem(fsys, prog); msg != "" {
			c.add(pl.at+"process.command[0]", "%s", msg)
		}
	}
}

// bundleFileProblem checks the program of a shell command line when it names
// a file of the bundle; programs found on PATH (sh, curl) are not checked.
func bundleFileProblem(fsys fs.FS, run string) string {
	words := strings.Fields(run)
	if len(words) == 0 {
		return ""
	}
	prog := words[0]
	if path.IsAbs(prog) || !strings.Contains(prog, "/") {
		return ""
	}
	name := path.Clean(prog)
	if !fs.ValidPath(name) {
		return fmt.Sprintf("%s points outside the bundle", quote(prog))
	}
	info, err := fs.Stat(fsys, name)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Sprintf("%s does not exist in the bundle", quote(prog))
	case err != nil:
		return fmt.Sprintf("%s: %v", quote(prog), err)
	case info.IsDir():
		return fmt.Sprintf("%s is a directory, not a program", quote(prog))
	case info.Mode().Perm()&0o111 == 0:
		return fmt.Sprintf("%s is not executable (mode %s); chmod +x it", quote(prog), info.Mode().Perm())
	}
	return ""
}

// maxLinks bounds the symlinks followed for one path, as the kernel does.
const maxLinks = 40

// bundleSourceProblem checks that name (clean and relative) exists in the
// bundle and stays in it when each symlink on the way is followed: Docker
// follows them on the host when it mounts the source.
func bundleSourceProblem(fsys fs.FS, name string) string {
	resolved, links := ".", 0
	rest := strings.Split(name, "/")
	for len(rest) > 0 {
		elem := rest[0]
		rest = rest[1:]
		if elem == "." || elem == "" {
			continue
		}
		next := path.Join(resolved, elem)
		info, err := fs.Lstat(fsys, next)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Sprintf("%s does not exist in the bundle", quote(name))
		case err != nil:
			return fmt.Sprintf("%s: %v", quote(name), err)
		case info.Mode()&fs.ModeSymlink == 0:
			if len(rest) > 0 && !info.IsDir() {
				return fmt.Sprintf("%s does not exist in the bundle: %s is a file", quote(name), next)
			}
			resolved = next
			continue
		}
		if links++; links > maxLinks {
			return fmt.Sprintf("%s: too many symlinks", quote(name))
		}
		target, err := fs.ReadLink(fsys, next)
		if err != nil {
			return fmt.Sprintf("%s: %v", quote(name), err)
		}
		if path.IsAbs(target) {
			return fmt.Sprintf("%s leaves the bundle: %s is a symlink to %s", quote(name), next, target)
		}
		joined := path.Join(resolved, target)
		if !fs.ValidPath(joined) {
			return fmt.Sprintf("%s leaves the bundle: %s is a symlink to %s", quote(name), next, target)
		}
		// Go on from the bundle root through the link's target.
		rest = append(strings.Split(joined, "/"), rest...)
		resolved = "."
	}
	return ""
}
