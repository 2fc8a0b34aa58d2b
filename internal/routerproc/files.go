package routerproc

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"bluegreen/internal/router"
)

// routeFileHeader tells a person who opens routes.yaml where it comes from.
const routeFileHeader = "# The last routing table pushed to the router by bluegreen server.\n" +
	"# A router restarted after a crash starts from it; the next push replaces it.\n"

// encodeRouteFile writes the table as a route file, in JSON: YAML reads
// JSON, and the JSON form leaves empty fields out (the YAML tags have no
// omitempty). The file is written before every push, with every app's
// routes in it: in YAML's block style, a table of a thousand apps took the
// server a tenth of a second to write each time, in JSON a few
// milliseconds.
func encodeRouteFile(cfg *router.Config) ([]byte, error) {
	js, err := json.Marshal(cfg)
	if err != nil {
		return nil, fmt.Errorf("encoding the routing table: %w", err)
	}
	return routeFile(js)
}

// routeFile is the route file of a table already encoded in JSON.
func routeFile(js []byte) ([]byte, error) {
	var buf bytes.Buffer
	buf.Grow(len(routeFileHeader) + len(js)*2)
	buf.WriteString(routeFileHeader)
	if err := json.Indent(&buf, js, "", "  "); err != nil {
		return nil, fmt.Errorf("encoding the routing table: %w", err)
	}
	buf.WriteByte('\n')
	return buf.Bytes(), nil
}

// writeFileAtomic replaces path with data so that a crash at any moment leaves
// either the old file or the new one, never a mix: the data reaches the disk
// before the rename, and the rename before the call returns.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Chmod(perm); err != nil {
		return fmt.Errorf("writing %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("replacing %s: %w", path, err)
	}
	ok = true
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("opening %s to sync it: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing %s: %w", dir, err)
	}
	return nil
}

// capLog keeps the router's log under max bytes: when it is over, its content
// moves to path.1 (replacing an older one) and the file is emptied in place.
// Emptying in place rather than renaming matters because the router holds the
// file open in append mode: its next line lands at the start of the emptied
// file, where a renamed file would keep growing unseen. Lines written between
// the copy and the truncation are lost; that is the price of not piping the
// router's output through the server, which it must outlive.
func capLog(path string, max int64) error {
	st, err := os.Stat(path)
	if err != nil || st.Size() <= max {
		return nil
	}
	src, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	defer src.Close()
	old := path + ".1"
	dst, err := os.OpenFile(old+".tmp", os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		dst.Close()
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	if err := os.Rename(old+".tmp", old); err != nil {
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	if err := os.Truncate(path, 0); err != nil {
		return fmt.Errorf("rotating %s: %w", path, err)
	}
	return nil
}

// tailFile returns about the last n bytes of path, from a line start, for error
// messages.
func tailFile(path string, n int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	off := max(st.Size()-n, 0)
	b, err := io.ReadAll(io.NewSectionReader(f, off, st.Size()-off))
	if err != nil {
		return ""
	}
	if off > 0 {
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			b = b[i+1:]
		}
	}
	return string(bytes.TrimRight(b, "\n"))
}
