package artifact

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// Digest identifies a bundle by its content: "sha256:" followed by 64
// lowercase hex digits.
//
// It is the SHA-256 of the bundle's manifest, not of any archive bytes, so it
// does not depend on how a tree was packaged or compressed. The manifest lists
// every entry in canonical order (byte order of the slash-separated path) and
// encodes each as
//
//	"dir " + mode + " " + path + "\x00"
//	"file " + mode + " " + size + " " + sha256hex(content) + " " + path + "\x00"
//	"symlink " + path + "\x00" + target + "\x00"
//
// where mode is four octal digits of the permission bits and size is decimal.
// Paths never contain NUL, which keeps the encoding unambiguous.
type Digest string

const digestPrefix = "sha256:"

// ParseDigest checks that s is a well-formed digest.
func ParseDigest(s string) (Digest, error) {
	h, ok := strings.CutPrefix(s, digestPrefix)
	if !ok || len(h) != sha256.Size*2 {
		return "", fmt.Errorf("parsing digest %q: want sha256:<64 hex digits>", s)
	}
	for _, c := range h {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return "", fmt.Errorf("parsing digest %q: want lowercase hex digits", s)
		}
	}
	return Digest(s), nil
}

// Hex returns the hex part of the digest, without the algorithm prefix.
func (d Digest) Hex() string { return strings.TrimPrefix(string(d), digestPrefix) }

// String returns the digest as text.
func (d Digest) String() string { return string(d) }

// Sentinel errors; they are wrapped with the bundle, entry and rule involved.
var (
	// ErrUnsafeEntry marks an entry refused because it could write or point
	// outside the tree, or is of a kind a bundle may not hold.
	ErrUnsafeEntry = errors.New("unsafe entry")
	// ErrLimit marks a bundle refused because it exceeds a configured limit.
	ErrLimit = errors.New("limit exceeded")
	// ErrDigestMismatch marks content whose digest is not the one declared.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrNotFound marks a bundle or a file that is not in the store.
	ErrNotFound = errors.New("not found")
	// ErrDestNotEmpty marks an unpack destination that already holds files.
	ErrDestNotEmpty = errors.New("destination not empty")
)

// EntryError reports why one entry of a bundle was refused.
type EntryError struct {
	Entry string // the entry's name as it appeared in the source
	Rule  string // the rule it broke, for people
	Err   error  // ErrUnsafeEntry or ErrLimit
}

func (e *EntryError) Error() string {
	return fmt.Sprintf("entry %s: %v: %s", strconv.Quote(e.Entry), e.Err, e.Rule)
}

func (e *EntryError) Unwrap() error { return e.Err }

func unsafeEntry(name, rule string, args ...any) error {
	return &EntryError{Entry: name, Rule: fmt.Sprintf(rule, args...), Err: ErrUnsafeEntry}
}

func overLimit(name, rule string, args ...any) error {
	return &EntryError{Entry: name, Rule: fmt.Sprintf(rule, args...), Err: ErrLimit}
}

// writeManifestEntry writes one entry in the manifest encoding documented
// on Digest.
func writeManifestEntry(h io.Writer, name string, n *node) {
	switch n.kind {
	case kindDir:
		fmt.Fprintf(h, "dir %04o %s\x00", n.mode, name)
	case kindFile:
		fmt.Fprintf(h, "file %04o %d %x %s\x00", n.mode, n.size, n.sum, name)
	case kindSymlink:
		fmt.Fprintf(h, "symlink %s\x00%s\x00", name, n.target)
	}
}

func digestOf(sum []byte) Digest { return Digest(digestPrefix + hex.EncodeToString(sum)) }
