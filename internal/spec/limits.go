package spec

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"

	"go.yaml.in/yaml/v3"
)

// Bounds on a spec, checked before anything else reads it. A real spec is a
// few KiB and a few hundred values; the bounds leave room for long comments
// and inline scripts while keeping what a hostile file can cost small: the
// YAML library builds the whole node tree before the first value is
// decoded, at up to about 100 bytes of memory per byte of dense input, so
// the byte bound is what bounds the memory of a parse (about 30 MB).
const (
	// MaxBytes bounds a spec file's size.
	MaxBytes = 256 << 10
	// MaxNodes bounds the YAML nodes of a spec: every key, value and list
	// item, x- sections included, and, while decoding, each use of an
	// alias counted again (so nested aliases cannot multiply it).
	MaxNodes = nodeBudget
)

// ErrTooLarge marks a spec refused because it exceeds MaxBytes or MaxNodes:
// errors.Is(err, ErrTooLarge) holds for the *Errors that reports it.
var ErrTooLarge = errors.New("spec too large")

// Unwrap lets errors.Is find ErrTooLarge in a report of a spec over its
// bounds.
func (e *Errors) Unwrap() error {
	if e.tooLarge {
		return ErrTooLarge
	}
	return nil
}

// tooLargeError is a report of one bound exceeded.
func tooLargeError(file string, line int, format string, args ...any) *Errors {
	return &Errors{Problems: []Problem{{File: file, Line: line, Message: fmt.Sprintf(format, args...)}}, tooLarge: true}
}

// sizeError refuses data over MaxBytes, or returns nil.
func sizeError(size int64, file string) error {
	if size <= MaxBytes {
		return nil
	}
	return tooLargeError(file, 0, "the file is %d bytes; a spec may be at most %d bytes (%d KiB)", size, MaxBytes, MaxBytes>>10)
}

// countNodes refuses a document of more than MaxNodes nodes, aliases
// counted once where they stand (the decoder charges their expansions).
func countNodes(root *yaml.Node, file string) error {
	n := 0
	var over *yaml.Node
	var walk func(*yaml.Node)
	walk = func(x *yaml.Node) {
		if over != nil {
			return
		}
		if n++; n > MaxNodes {
			over = x
			return
		}
		for _, c := range x.Content {
			walk(c)
		}
	}
	walk(root)
	if over == nil {
		return nil
	}
	return tooLargeError(file, over.Line, "%s (over %d keys, values and list items, x- sections included)", budgetMessage, MaxNodes)
}

// ReadFile reads a spec file of at most MaxBytes: a larger one is refused
// (an *Errors wrapping ErrTooLarge) before it is read. name is used in the
// report; fsys nil means the operating system's files.
func ReadFile(fsys fs.FS, name string) ([]byte, error) {
	var f fs.File
	var err error
	if fsys == nil {
		f, err = os.Open(name)
	} else {
		f, err = fsys.Open(name)
	}
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	if info.IsDir() {
		return nil, fmt.Errorf("reading spec: %s is a directory", name)
	}
	if err := sizeError(info.Size(), name); err != nil {
		return nil, err
	}
	// The size may lie (a pipe, a file still growing): read one byte past
	// the bound to know.
	data, err := io.ReadAll(io.LimitReader(f, MaxBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading spec: %w", err)
	}
	if err := sizeError(int64(len(data)), name); err != nil {
		return nil, err
	}
	return data, nil
}
