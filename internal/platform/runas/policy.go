// Package runas decides which user an app's instances and hooks run as,
// and lays out the data directory so that this user reaches the app's
// unpacked revision and nothing else of the server's.
//
// A server that runs as root gives each app a user of its own by default: a
// user ID from a reserved range (DynamicFirst to DynamicLast), chosen the
// first time the app is deployed and kept in DATA/run-as.json, with no
// account in /etc/passwd (the kernel needs none). Apps then cannot read the
// server's files, each other's revisions, or each other's processes'
// environments. --run-as USER runs every app as one named user instead, and
// --run-as root keeps the old behaviour, but only when asked for by name.
//
// A server that does not run as root cannot switch users: apps run as the
// server's own user, and asking for any other user is refused.
package runas

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"bluegreen/internal/platform"
)

// Dynamic is the --run-as value that gives each app a user of its own.
const Dynamic = "dynamic"

// The dynamic users' range: 60578–61183 is unused by the conventions of
// Debian and systemd (below systemd's own DynamicUser range, above
// systemd-homed's), and within 16 bits, so the user namespaces of rootless
// containers usually map it.
const (
	DynamicFirst = 60578
	DynamicLast  = 61183
)

// Config is the server's run-as policy as its flags give it.
type Config struct {
	// RunAs is --run-as: Dynamic, "root", a user name or a numeric uid.
	// Empty means Dynamic when the server runs as root, else the server's
	// own user.
	RunAs string
	// Allow lists the users an app's run_as may name (--allow-run-as).
	Allow []string
	// DataDir is the server's data directory: dynamic users are kept in
	// DataDir/run-as.json, and every user an app runs as must reach
	// DataDir/revisions.
	DataDir string
}

// Refusal is an app's run-as choice that the server cannot or will not
// arrange. Its message says why and what to do instead.
type Refusal struct{ msg string }

// Error says why the choice is refused and what to do instead.
func (r *Refusal) Error() string { return r.msg }

func refuse(format string, args ...any) *Refusal {
	return &Refusal{fmt.Sprintf(format, args...)}
}

// host is what the policy needs from the machine, replaced in tests.
type host struct {
	self   platform.User // the server's own identity
	lookup func(name string) (platform.User, error)
	uidMap string // /proc/self/uid_map
}

// Policy resolves the user each app runs as.
type Policy struct {
	cfg     Config
	host    host
	dynamic bool
	fixed   platform.User   // the user every app runs as, unless dynamic
	allowed []platform.User // users an app's run_as may name

	mu    sync.Mutex
	alloc *allocations // dynamic users, loaded on first use
}

// New checks cfg against who the server is and returns the policy. It
// fails, saying what to do instead, when the server cannot run apps as
// asked: another user while not root, an unknown user, or dynamic users
// whose IDs the server's user namespace does not map.
func New(cfg Config) (*Policy, error) {
	self, err := currentUser()
	if err != nil {
		return nil, err
	}
	return newPolicy(cfg, host{self: self, lookup: Lookup, uidMap: "/proc/self/uid_map"})
}

func newPolicy(cfg Config, h host) (*Policy, error) {
	p := &Policy{cfg: cfg, host: h}
	root := h.self.UID == 0
	switch {
	case cfg.RunAs == Dynamic || (cfg.RunAs == "" && root):
		if !root {
			return nil, fmt.Errorf("--run-as %s: the server runs as %s, not root, so it cannot give apps users of their own; leave --run-as out (apps then run as %s) or run the server as root", Dynamic, h.self, h.self)
		}
		if err := checkMapped(h.uidMap, DynamicFirst, DynamicLast); err != nil {
			return nil, fmt.Errorf("--run-as %s: %w; name a user with --run-as USER instead", Dynamic, err)
		}
		p.dynamic = true
	case cfg.RunAs == "":
		p.fixed = h.self
	default:
		u, err := h.lookup(cfg.RunAs)
		if err != nil {
			return nil, fmt.Errorf("--run-as %s: %w", cfg.RunAs, err)
		}
		if !root && u.UID != h.self.UID {
			return nil, fmt.Errorf("--run-as %s: the server runs as %s, not root, so it cannot start processes as %s; leave --run-as out (apps then run as %s) or run the server as root", cfg.RunAs, h.self, u, h.self)
		}
		p.fixed = u
	}
	for _, name := range cfg.Allow {
		u, err := h.lookup(name)
		if err != nil {
			return nil, fmt.Errorf("--allow-run-as %s: %w", name, err)
		}
		if !root && u.UID != h.self.UID {
			return nil, fmt.Errorf("--allow-run-as %s: the server runs as %s, not root, so apps cannot run as anyone else", name, h.self)
		}
		p.allowed = append(p.allowed, u)
	}
	return p, nil
}

// Describe says, for the server's log, who apps run as by default.
func (p *Policy) Describe() string {
	switch {
	case p.dynamic:
		return fmt.Sprintf("a user of each app's own (uids %d-%d)", DynamicFirst, DynamicLast)
	case p.fixed.UID == 0:
		return "root: apps and hooks can read everything the server can, its secrets included"
	case p.fixed.UID == p.host.self.UID:
		return fmt.Sprintf("the server's own user %s: apps and hooks can read the server's data directory, its secrets included", p.fixed)
	}
	return fmt.Sprintf("%s, every app the same user", p.fixed)
}

// Isolated reports whether apps run, by default, as users that cannot
// read the server's files.
func (p *Policy) Isolated() bool {
	return p.dynamic || (p.fixed.UID != 0 && p.fixed.UID != p.host.self.UID)
}

// Resolve returns the user app runs as, given its spec's run_as (empty for
// the server's default). A choice the server cannot or will not arrange is
// a *Refusal; a dynamic user is given to the app the first time.
func (p *Policy) Resolve(app, runAs string) (platform.User, error) {
	if runAs == "" {
		if p.dynamic {
			return p.dynamicUser(app)
		}
		return p.fixed, nil
	}
	u, err := p.host.lookup(runAs)
	if err != nil {
		return platform.User{}, refuse("%v on the server's machine", err)
	}
	self := p.host.self
	switch {
	case self.UID != 0 && u.UID != self.UID:
		return platform.User{}, refuse("the server runs as %s, not root, so it cannot start processes as %s; remove run_as (the app then runs as %s) or run the server as root", self, u, self)
	case self.UID != 0:
		return u, nil // the server's own user: no switch
	case !p.dynamic && u.UID == p.fixed.UID:
		return u, nil // the user every app runs as anyway
	case !slices.ContainsFunc(p.allowed, func(a platform.User) bool { return a.UID == u.UID }):
		return platform.User{}, refuse("this server does not let apps run as %s (bluegreen server --allow-run-as lists %s); remove run_as to run as %s, or ask the server's operator to allow it",
			u, p.allowList(), p.defaultName())
	}
	if err := Reach(filepath.Join(p.cfg.DataDir, RevisionsDir), u); err != nil {
		return platform.User{}, refuse("%v", err)
	}
	return u, nil
}

func (p *Policy) allowList() string {
	if len(p.cfg.Allow) == 0 {
		return "no users"
	}
	return strings.Join(p.cfg.Allow, ", ")
}

func (p *Policy) defaultName() string {
	if p.dynamic {
		return "a user of its own"
	}
	return p.fixed.String()
}

// Check refuses, as Resolve would, an app's run_as that the server cannot
// or will not arrange, without giving the app a dynamic user yet (that
// happens when it is first deployed).
func (p *Policy) Check(app, runAs string) error {
	if runAs == "" {
		return nil
	}
	_, err := p.Resolve(app, runAs)
	return err
}

// AllowsRoot reports whether an app may run as root: the server runs every
// app as root, or lets apps ask for it (--allow-run-as root).
func (p *Policy) AllowsRoot() bool {
	if !p.dynamic && p.fixed.UID == 0 {
		return true
	}
	return slices.ContainsFunc(p.allowed, func(a platform.User) bool { return a.UID == 0 })
}

// Switches reports whether processes started as u must change identity.
func (p *Policy) Switches(u platform.User) bool {
	return u.UID != p.host.self.UID || u.GID != p.host.self.GID
}

// Lookup finds a user by name or numeric ID. A numeric ID with no account
// is a user of its own group, with "/" as its home.
func Lookup(name string) (platform.User, error) {
	if name == "" {
		return platform.User{}, errors.New("no user named")
	}
	var (
		acct *user.User
		err  error
	)
	if n, perr := strconv.ParseUint(name, 10, 32); perr == nil {
		acct, err = user.LookupId(name)
		var unknown user.UnknownUserIdError
		if errors.As(err, &unknown) {
			return platform.User{UID: uint32(n), GID: uint32(n), Home: "/"}, nil
		}
	} else {
		acct, err = user.Lookup(name)
	}
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		return platform.User{}, fmt.Errorf("no such user %q", name)
	}
	if err != nil {
		return platform.User{}, fmt.Errorf("looking up user %q: %w", name, err)
	}
	return fromAccount(acct)
}

func fromAccount(a *user.User) (platform.User, error) {
	uid, err1 := strconv.ParseUint(a.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(a.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return platform.User{}, fmt.Errorf("user %s: %w", a.Username, err)
	}
	u := platform.User{Name: a.Username, UID: uint32(uid), GID: uint32(gid), Home: a.HomeDir}
	if u.Home == "" {
		u.Home = "/"
	}
	ids, err := a.GroupIds()
	if err != nil {
		return platform.User{}, fmt.Errorf("groups of user %s: %w", a.Username, err)
	}
	for _, id := range ids {
		if g, err := strconv.ParseUint(id, 10, 32); err == nil && uint32(g) != u.GID {
			u.Groups = append(u.Groups, uint32(g))
		}
	}
	return u, nil
}

// currentUser is the server's own identity.
func currentUser() (platform.User, error) {
	uid, gid := uint32(os.Geteuid()), uint32(os.Getegid())
	u := platform.User{UID: uid, GID: gid, Home: os.Getenv("HOME")}
	if acct, err := user.LookupId(strconv.FormatUint(uint64(uid), 10)); err == nil {
		u.Name = acct.Username
		if acct.HomeDir != "" {
			u.Home = acct.HomeDir
		}
	}
	if u.Home == "" {
		u.Home = "/"
	}
	return u, nil
}
