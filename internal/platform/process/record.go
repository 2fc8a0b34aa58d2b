package process

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"bluegreen/internal/platform"
)

// record is an instance's identity as kept in instances/ID.json. The shim
// writes it once the app has started, so an instance whose launcher died a
// moment later is still known to the next server.
type record struct {
	ID       string `json:"id"`
	App      string `json:"app"`
	Revision int64  `json:"revision"`
	Fleet    string `json:"fleet"`
	Service  string `json:"service,omitempty"`
	Index    int    `json:"index"`
	Host     string `json:"host"`
	Port     int    `json:"port"`

	// PID is the app's process, also its process group; StartTicks is its
	// start time (field 22 of /proc/PID/stat), which tells it from a later
	// process given the same PID.
	PID        int       `json:"pid"`
	StartTicks uint64    `json:"start_ticks"`
	StartedAt  time.Time `json:"started_at"`
	// ShimPID and ShimStartTicks identify the shim that watches the app.
	ShimPID        int    `json:"shim_pid"`
	ShimStartTicks uint64 `json:"shim_start_ticks"`
	// ShimShared says the shim is its fleet's, shared with the fleet's
	// other instances: the server asks it on its socket, not with signals.
	ShimShared bool `json:"shim_shared,omitempty"`

	StopSignal  string        `json:"stop_signal"`
	StopTimeout time.Duration `json:"stop_timeout"`
}

// exitStatus is written by the shim to instances/ID.exit.json after the
// app's output has been flushed to its log.
type exitStatus struct {
	// Code is the exit code, or 128+N when signal N killed the app.
	Code     int       `json:"code"`
	Signal   string    `json:"signal,omitempty"`
	ExitedAt time.Time `json:"exited_at"`
}

// layout names the files in the state directory.
type layout struct{ dir string }

func (l layout) instancesDir() string        { return filepath.Join(l.dir, "instances") }
func (l layout) logsDir() string             { return filepath.Join(l.dir, "logs") }
func (l layout) recordPath(id string) string { return filepath.Join(l.instancesDir(), id+".json") }
func (l layout) exitPath(id string) string   { return filepath.Join(l.instancesDir(), id+".exit.json") }
func (l layout) logPath(id string) string    { return filepath.Join(l.logsDir(), id+".log") }

// checkID rejects IDs that are not safe as file names.
func checkID(id string) error { return platform.CheckID(id) }

// writeFileAtomic replaces path with data so that a crash at any moment
// leaves either the old file or the new one, never a torn one: temp file,
// fsync, rename, fsync of the directory.
func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
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
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(path, append(b, '\n'))
}

// readRecord returns the record for id, or fs.ErrNotExist.
func (l layout) readRecord(id string) (record, error) {
	var r record
	b, err := os.ReadFile(l.recordPath(id))
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("reading %s: %w", l.recordPath(id), err)
	}
	return r, nil
}

// readExit returns the exit status the shim wrote for id, if any.
func (l layout) readExit(id string) (exitStatus, bool) {
	var e exitStatus
	b, err := os.ReadFile(l.exitPath(id))
	if err != nil || json.Unmarshal(b, &e) != nil {
		return e, false
	}
	return e, true
}

// recordIDs lists the IDs that have a record, sorted.
func (l layout) recordIDs() ([]string, error) {
	ents, err := os.ReadDir(l.instancesDir())
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range ents {
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if ok && !strings.HasSuffix(id, ".exit") && checkID(id) == nil {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids) // "a-b.json" sorts before "a.json", but "a" before "a-b"
	return ids, nil
}

// forget removes id's record and exit status; its logs stay.
func (l layout) forget(id string) error {
	for _, p := range []string{l.exitPath(id), l.recordPath(id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return syncDir(l.instancesDir())
}
