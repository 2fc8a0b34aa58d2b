package artifact

import (
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"path"
	"slices"
	"strings"
	"unicode/utf8"
)

type kind uint8

const (
	kindDir kind = iota + 1
	kindFile
	kindSymlink
)

// maxLinkHops mirrors the kernel's limit on symlinks followed in one lookup.
const maxLinkHops = 40

// node is one entry of a bundle's tree.
type node struct {
	kind     kind
	mode     fs.FileMode // permission bits only
	size     int64       // files
	sum      []byte      // files: SHA-256 of the content, once read
	target   string      // symlinks
	implicit bool        // a directory only implied by a deeper path
}

// tree is the validated shape of a bundle. Every entry goes through add, so
// the same rules hold whether a tree comes from a directory or an archive:
// clean relative names, no duplicates, no entry below a symlink or a file,
// and the limits.
type tree struct {
	lim   Limits
	nodes map[string]*node
	total int64 // file bytes read so far

	// steps counts path components walked while resolving symlinks, so a
	// tree of many long, chained links cannot keep the check busy for long.
	steps int
}

// resolveStepsPerEntry bounds the symlink checks of one tree in proportion
// to the entries it may hold: ordinary links walk a handful of components,
// while a hostile tree of long chained links reaches the bound quickly.
const resolveStepsPerEntry = 64

func newTree(lim Limits) *tree {
	return &tree{lim: lim.withDefaults(), nodes: make(map[string]*node)}
}

// cleanName validates an entry name as found in a source and returns its
// canonical form: slash-separated, relative, no "." or empty segments.
// The root itself ("." or "./") cleans to "".
func (t *tree) cleanName(raw string) (string, error) {
	if len(raw) > t.lim.MaxPathLen {
		return "", overLimit(raw, "path longer than %d bytes", t.lim.MaxPathLen)
	}
	if strings.ContainsRune(raw, 0) {
		return "", unsafeEntry(raw, "path contains a NUL byte")
	}
	// Names travel through io/fs, JSON and the dashboard, all UTF-8; a tree
	// that could be stored but not walked again would be a trap.
	if !utf8.ValidString(raw) {
		return "", unsafeEntry(raw, "path is not valid UTF-8")
	}
	// A backslash is a separator on Windows; refusing it keeps a tree from
	// meaning different things on different systems.
	if strings.ContainsRune(raw, '\\') {
		return "", unsafeEntry(raw, "path contains a backslash")
	}
	if strings.HasPrefix(raw, "/") {
		return "", unsafeEntry(raw, "absolute path")
	}
	var keep []string
	for seg := range strings.SplitSeq(raw, "/") {
		switch seg {
		case "", ".":
		case "..":
			return "", unsafeEntry(raw, "path has a .. segment")
		default:
			keep = append(keep, seg)
		}
	}
	return strings.Join(keep, "/"), nil
}

// add records an entry under its clean name, creating the directories its
// path implies. raw is the name as the source spelled it, for errors.
func (t *tree) add(raw, name string, n *node) error {
	if name == "" {
		if n.kind == kindDir {
			return nil // the root: its mode belongs to whoever unpacks
		}
		return unsafeEntry(raw, "entry has an empty name")
	}
	if n.kind == kindSymlink {
		if err := t.checkTarget(raw, n.target); err != nil {
			return err
		}
	}
	if old := t.nodes[name]; old != nil {
		if old.implicit && n.kind == kindDir {
			old.mode, old.implicit = n.mode|0o700, false
			return nil
		}
		if old.implicit {
			return unsafeEntry(raw, "a directory of that name is implied by an earlier path")
		}
		return unsafeEntry(raw, "duplicate entry")
	}
	for i := 0; i < len(name); i++ {
		if name[i] != '/' {
			continue
		}
		parent := name[:i]
		switch p := t.nodes[parent]; {
		case p == nil:
			if err := t.insert(raw, parent, &node{kind: kindDir, mode: 0o755, implicit: true}); err != nil {
				return err
			}
		case p.kind == kindSymlink:
			// Writing through a link is how tar-slip escapes; refuse even
			// links that stay inside, so the tree means what it says.
			return unsafeEntry(raw, "parent %q is a symlink", parent)
		case p.kind != kindDir:
			return unsafeEntry(raw, "parent %q is not a directory", parent)
		}
	}
	return t.insert(raw, name, n)
}

func (t *tree) insert(raw, name string, n *node) error {
	if len(t.nodes) >= t.lim.MaxEntries {
		return overLimit(raw, "more than %d entries", t.lim.MaxEntries)
	}
	if n.kind == kindDir {
		// Owner rwx on directories keeps an unpacked fleet removable.
		n.mode |= 0o700
	}
	t.nodes[name] = n
	return nil
}

func (t *tree) checkTarget(raw, target string) error {
	switch {
	case target == "":
		return unsafeEntry(raw, "symlink has an empty target")
	case len(target) > t.lim.MaxPathLen:
		return overLimit(raw, "symlink target longer than %d bytes", t.lim.MaxPathLen)
	case strings.ContainsRune(target, 0):
		return unsafeEntry(raw, "symlink target contains a NUL byte")
	case !utf8.ValidString(target):
		return unsafeEntry(raw, "symlink target is not valid UTF-8")
	case strings.HasPrefix(target, "/"):
		return unsafeEntry(raw, "symlink target %q is absolute", target)
	case strings.ContainsRune(target, '\\'):
		return unsafeEntry(raw, "symlink target %q contains a backslash", target)
	}
	return nil
}

// readFile copies a file's content from src to dst (dst may be io.Discard),
// recording its size and hash, and stops as soon as more bytes arrive than
// the limits allow — whatever size the source declared.
func (t *tree) readFile(raw string, n *node, dst io.Writer, src io.Reader) error {
	allow, rule, limit := t.lim.MaxFileBytes, "file larger than %d bytes", t.lim.MaxFileBytes
	if rest := t.lim.MaxTotalBytes - t.total; rest < allow {
		allow, rule, limit = rest, "bundle larger than %d bytes in total", t.lim.MaxTotalBytes
	}
	h := sha256.New()
	got, err := io.Copy(io.MultiWriter(dst, h), io.LimitReader(src, allow+1))
	t.total += got
	if got > allow {
		return overLimit(raw, rule, limit)
	}
	if err != nil {
		return fmt.Errorf("entry %q: reading content: %w", raw, err)
	}
	n.size, n.sum = got, h.Sum(nil)
	return nil
}

// names returns the entries in canonical order. Byte order puts every
// directory before its contents, since a parent is a prefix of its children.
func (t *tree) names() []string {
	names := make([]string, 0, len(t.nodes))
	for name := range t.nodes {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// digest computes the tree's digest; every file must have been read.
func (t *tree) digest() Digest {
	h := sha256.New()
	for _, name := range t.names() {
		writeManifestEntry(h, name, t.nodes[name])
	}
	return digestOf(h.Sum(nil))
}

// checkLinks refuses the tree if any symlink, followed through the other
// links of the tree, leads outside it. A lexical check of each link alone is
// not enough: with "d -> ." the target "d/../x" looks inside but is not.
func (t *tree) checkLinks() error {
	for _, name := range t.names() {
		n := t.nodes[name]
		if n.kind != kindSymlink {
			continue
		}
		if _, err := t.resolve(path.Dir(name), n.target); err != nil {
			return unsafeEntry(name, "symlink target %q %v", n.target, err)
		}
	}
	return nil
}

type resolveError string

func (e resolveError) Error() string { return string(e) }

// resolve follows rel from directory dir ("." for the root) the way the
// kernel would, through the tree's symlinks, and returns the resulting clean
// path ("" for the root). Components that do not exist are taken lexically.
func (t *tree) resolve(dir, rel string) (string, error) {
	cur := "" // the path resolved so far
	if dir != "." {
		cur = dir
	}
	pending := strings.Split(rel, "/")
	for hops := 0; len(pending) > 0; {
		if t.steps++; t.steps > resolveStepsPerEntry*t.lim.MaxEntries {
			return "", resolveError("makes the bundle's symlinks too costly to check")
		}
		seg := pending[0]
		pending = pending[1:]
		switch seg {
		case "", ".":
			continue
		case "..":
			if cur == "" {
				return "", resolveError("points outside the bundle")
			}
			cur = cur[:max(strings.LastIndexByte(cur, '/'), 0)]
			continue
		}
		parent := cur
		if cur == "" {
			cur = seg
		} else {
			cur += "/" + seg
		}
		n := t.nodes[cur]
		if n == nil || n.kind != kindSymlink {
			continue
		}
		if hops++; hops > maxLinkHops {
			return "", resolveError("goes through too many symlinks")
		}
		if strings.HasPrefix(n.target, "/") {
			return "", resolveError("points outside the bundle")
		}
		cur = parent
		pending = append(strings.Split(n.target, "/"), pending...)
	}
	return cur, nil
}
