package params

import (
	"fmt"
	"regexp"
	"strings"
)

var (
	segmentRE = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	envNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
)

// maxNameLen keeps names usable as keys everywhere they travel.
const maxNameLen = 1024

// ValidateName checks a hierarchical name such as "/shop/DATABASE_URL": a
// leading slash, segments of [A-Za-z0-9_.-], and a last segment that is a
// valid environment variable name, because that is what it becomes.
func ValidateName(name string) error {
	if !strings.HasPrefix(name, "/") {
		return fmt.Errorf("param name %q: must start with /", name)
	}
	if len(name) > maxNameLen {
		return fmt.Errorf("param name %q…: longer than %d characters", name[:32], maxNameLen)
	}
	segments := strings.Split(name[1:], "/")
	for i, seg := range segments {
		if seg == "" {
			return fmt.Errorf("param name %q: empty segment %d", name, i+1)
		}
		if !segmentRE.MatchString(seg) {
			return fmt.Errorf("param name %q: segment %q may only hold A-Z, a-z, 0-9, _, . and -", name, seg)
		}
	}
	if last := segments[len(segments)-1]; !envNameRE.MatchString(last) {
		return fmt.Errorf("param name %q: last segment %q is not a valid environment variable name (letters, digits, _; not starting with a digit)", name, last)
	}
	return nil
}

// EnvName is the environment variable a param is injected as: its last
// segment ("/shop/DATABASE_URL" → "DATABASE_URL").
func EnvName(name string) string { return name[strings.LastIndex(name, "/")+1:] }
