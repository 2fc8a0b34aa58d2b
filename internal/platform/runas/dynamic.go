package runas

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"

	"bluegreen/internal/platform"
)

// StateFile keeps, in the data directory, the user ID given to each app.
const StateFile = "run-as.json"

// allocations is StateFile's content. An app keeps its user ID for good,
// so the files and processes it left behind stay its own.
type allocations struct {
	Apps map[string]uint32 `json:"apps"`
}

// dynamicUser returns app's user, giving it the lowest free ID of the
// range the first time.
func (p *Policy) dynamicUser(app string) (platform.User, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	path := filepath.Join(p.cfg.DataDir, StateFile)
	if p.alloc == nil {
		a, err := loadAllocations(path)
		if err != nil {
			return platform.User{}, err
		}
		p.alloc = a
	}
	uid, ok := p.alloc.Apps[app]
	if !ok {
		used := map[uint32]bool{}
		for _, id := range p.alloc.Apps {
			used[id] = true
		}
		for id := uint32(DynamicFirst); id <= DynamicLast; id++ {
			if !used[id] && !hasAccount(id) {
				uid, ok = id, true
				break
			}
		}
		if !ok {
			return platform.User{}, refuse("app %s: every user ID from %d to %d is taken; run apps as a named user (bluegreen server --run-as USER)", app, DynamicFirst, DynamicLast)
		}
		p.alloc.Apps[app] = uid
		if err := saveAllocations(path, p.alloc); err != nil {
			delete(p.alloc.Apps, app)
			return platform.User{}, err
		}
	}
	return dynamicUser(uid), nil
}

// dynamicUser is the identity of a dynamic user ID: its own group, no
// supplementary groups, no account, no home.
func dynamicUser(uid uint32) platform.User {
	return platform.User{UID: uid, GID: uid, Home: "/"}
}

// hasAccount reports whether id is a user or group of the machine: such an
// ID belongs to someone else.
func hasAccount(id uint32) bool {
	s := strconv.FormatUint(uint64(id), 10)
	_, uerr := user.LookupId(s)
	_, gerr := user.LookupGroupId(s)
	return uerr == nil || gerr == nil
}

func loadAllocations(path string) (*allocations, error) {
	a := &allocations{Apps: map[string]uint32{}}
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return a, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the apps' users: %w", err)
	}
	// A damaged file is an error, never a fresh start: giving an app
	// another app's ID would hand it that app's files.
	if err := json.Unmarshal(b, a); err != nil {
		return nil, fmt.Errorf("reading the apps' users from %s: %w", path, err)
	}
	if a.Apps == nil {
		a.Apps = map[string]uint32{}
	}
	return a, nil
}

// saveAllocations replaces the file atomically: temp file, fsync, rename.
func saveAllocations(path string, a *allocations) error {
	b, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("saving the apps' users: %w", err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("saving the apps' users: %w", err)
	}
	if d, err := os.Open(filepath.Dir(path)); err == nil {
		d.Sync()
		d.Close()
	}
	return nil
}

// checkMapped makes sure the user namespace the server runs in maps every
// ID from first to last (setuid to an unmapped ID fails). No map file (not
// Linux) means no namespace to worry about.
func checkMapped(mapFile string, first, last uint32) error {
	f, err := os.Open(mapFile)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	var ranges []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) != 3 {
			continue
		}
		inside, err1 := strconv.ParseUint(fields[0], 10, 32)
		count, err2 := strconv.ParseUint(fields[2], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		if inside <= uint64(first) && uint64(last) < inside+count {
			return nil
		}
		ranges = append(ranges, fmt.Sprintf("%d-%d", inside, inside+count-1))
	}
	return fmt.Errorf("user IDs %d-%d are not mapped in the server's user namespace (%s maps %s)", first, last, mapFile, strings.Join(ranges, ", "))
}
