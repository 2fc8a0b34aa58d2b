package runas

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	"bluegreen/internal/platform"
)

// RevisionsDir is where, in the data directory, revisions are unpacked
// (APP/GENERATION): the one part of it the users apps run as may enter.
const RevisionsDir = "revisions"

// The data directory when apps run as other users:
//
//	DATA/                      0711: passable, not listable
//	  admin.token, params.key,
//	  bluegreen.db, ...        0600 (files), 0700 (directories): the server's
//	  revisions/               0711
//	    APP/                   0711
//	      GENERATION/          0750, group of the revision's user: only that
//	                           user (and root) may enter; the bundle inside
//	                           is readable, not writable, by it
//
// The gate is per revision, not per app, so that a revision whose run_as
// differs from the live one's does not lock the live fleet out of its own
// files. With every app as a user of its own, an app reaches its own
// revisions and nothing else. When apps share one user they share its
// group, so they can read each other's revisions (never the server's files).

// shares reports whether any app may run as a user other than the server's.
func (p *Policy) shares() bool {
	self := p.host.self.UID
	return self == 0 && (p.dynamic || p.fixed.UID != self ||
		slices.ContainsFunc(p.allowed, func(u platform.User) bool { return u.UID != self }))
}

// PrepareDataDir sets the modes of the data directory's top level: the
// directory itself passable by the users apps run as (and no more), every
// other entry but revisions/ closed to everyone but the server. It then
// checks (CheckReach) that the users apps run as by default reach it. Call
// it once everything the server keeps at the top level exists.
func (p *Policy) PrepareDataDir() error {
	data := p.cfg.DataDir
	mode := fs.FileMode(0o700)
	if p.shares() {
		mode = 0o711
	}
	if err := os.Chmod(data, mode); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	revs := filepath.Join(data, RevisionsDir)
	if err := os.Mkdir(revs, mode); err != nil && !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := os.Chmod(revs, mode); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	ents, err := os.ReadDir(data)
	if err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	for _, e := range ents {
		if e.Name() == RevisionsDir || e.Type()&fs.ModeSymlink != 0 {
			continue
		}
		path := filepath.Join(data, e.Name())
		info, err := os.Lstat(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue // a temporary file, gone meanwhile
		}
		if err != nil {
			return fmt.Errorf("data directory: %w", err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			if err := os.Chmod(path, perm&0o700); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("data directory: %w", err)
			}
		}
	}
	return p.CheckReach()
}

// CheckReach checks that the users apps run as by default can reach the
// revisions in the data directory, and says which directory stops them if
// they cannot. The data directory's own modes are the server's to set
// (PrepareDataDir); its parents' are not.
func (p *Policy) CheckReach() error {
	if !p.shares() {
		return nil
	}
	u, who := p.fixed, p.fixed.String()
	if p.dynamic {
		u, who = dynamicUser(DynamicFirst), fmt.Sprintf("users of their own (uids %d-%d)", DynamicFirst, DynamicLast)
	}
	if u.UID == 0 {
		return nil
	}
	if err := Reach(filepath.Dir(p.cfg.DataDir), u); err != nil {
		return fmt.Errorf("apps run as %s, who cannot reach the data directory %s: %w; or run apps as root with --run-as root (they can then read the server's secrets)", who, p.cfg.DataDir, err)
	}
	return nil
}

// PrepareRevisionDir makes a revision's directory, empty if it is new,
// enterable by the revision's user u and by nobody else but the server:
// group u's, mode 0750 (0700 when u is the server's own user or root). Its
// app's directory is passable only. It is called before the bundle is
// unpacked into it, and before each use, so a change of user (another
// policy, a restored data directory) is applied to revisions already there.
func (p *Policy) PrepareRevisionDir(dir string, u platform.User) error {
	appMode := fs.FileMode(0o700)
	if p.shares() {
		appMode = 0o711
	}
	app := filepath.Dir(dir)
	if err := os.Mkdir(app, appMode); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	if err := os.Chmod(app, appMode); err != nil {
		return err
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	self := p.host.self
	if self.UID != 0 {
		return os.Chmod(dir, 0o700)
	}
	gid, mode := self.GID, fs.FileMode(0o700)
	if p.Switches(u) {
		gid, mode = u.GID, 0o750
	}
	if err := os.Lchown(dir, int(self.UID), int(gid)); err != nil {
		return err
	}
	return os.Chmod(dir, mode)
}

// ShareTree lets whoever may enter dir read everything in it, and write
// nothing: each file's and directory's bits for others become its owner's
// read and execute bits. A revision is unpacked by the server; its user
// reads it through the group of dir itself, the gate, whose mode stays.
func ShareTree(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if path == dir || d.Type()&fs.ModeSymlink != 0 {
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		perm := info.Mode().Perm()
		want := perm&^0o007 | (perm>>6)&0o5
		if want == perm {
			return nil
		}
		return os.Chmod(path, info.Mode()&^fs.ModePerm|want)
	})
}

// Reach checks that u may pass through every directory from / down to path
// (path itself included, as far as it exists), by the mode bits (ACLs are
// not looked at). The error names the first directory that stops u.
func Reach(path string, u platform.User) error {
	if u.UID == 0 {
		return nil
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	// Check the directories that exist; symlinks are resolved so that the
	// directories checked are the ones the kernel walks.
	for {
		if real, err := filepath.EvalSymlinks(abs); err == nil {
			abs = real
			break
		}
		parent := filepath.Dir(abs)
		if parent == abs {
			return nil
		}
		abs = parent
	}
	dir := "/"
	parts := strings.Split(strings.TrimPrefix(abs, "/"), "/")
	for i := 0; ; i++ {
		info, err := os.Stat(dir)
		if err != nil {
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if ok && !canSearch(st, u) {
			return fmt.Errorf("%s cannot reach %s: %s has mode %04o, owner uid %d, group gid %d; let others pass (chmod o+x %s) or choose a data directory others can reach, such as /var/lib/bluegreen",
				u, path, dir, info.Mode().Perm(), st.Uid, st.Gid, dir)
		}
		if i == len(parts) || parts[i] == "" {
			return nil
		}
		dir = filepath.Join(dir, parts[i])
	}
}

func canSearch(st *syscall.Stat_t, u platform.User) bool {
	switch {
	case st.Uid == u.UID:
		return st.Mode&0o100 != 0
	case st.Gid == u.GID || slices.Contains(u.Groups, st.Gid):
		return st.Mode&0o010 != 0
	}
	return st.Mode&0o001 != 0
}

// Credential is the identity to give a process started as u, or nil when
// the server starts it as itself.
func (p *Policy) Credential(u platform.User) *syscall.Credential {
	if !p.Switches(u) {
		return nil
	}
	return Credential(u)
}

// Credential is the identity of a process started as u: its user, its
// group and exactly its supplementary groups (none of the server's).
func Credential(u platform.User) *syscall.Credential {
	return &syscall.Credential{Uid: u.UID, Gid: u.GID, Groups: slices.Clone(u.Groups)}
}
