package spec

import (
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// Bounds of the router's per-app settings: a value past them is a typo.
const (
	// MaxBodyLimit bounds router.max_body (1 TiB).
	MaxBodyLimit = 1 << 40
	// MinRouterTimeout is the least router.timeout.
	MinRouterTimeout = 10 * time.Millisecond
	// MaxDrainSpread bounds retire.drain_spread.
	MaxDrainSpread = time.Hour
)

var bodySizePattern = regexp.MustCompile(`^([0-9]{1,13})\s*(B|KiB|MiB|GiB|KB|MB|GB)$`)

var bodySizeUnits = map[string]int64{"B": 1, "KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 1e3, "MB": 1e6, "GB": 1e9}

// parseBodySize reads a size such as "10MiB", "512KiB" or "2MB".
func parseBodySize(s string) (int64, error) {
	m := bodySizePattern.FindStringSubmatch(s)
	if m == nil {
		return 0, fmt.Errorf("bad size %s: want a whole number and a unit of B, KiB, MiB or GiB (or KB, MB, GB), like 10MiB", quote(s))
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	n *= bodySizeUnits[m[2]]
	if n <= 0 || n > MaxBodyLimit {
		return 0, fmt.Errorf("%s is out of range: from 1B to 1024GiB (leave it out for no limit)", quote(s))
	}
	return n, nil
}

// MaxBodyBytes is router.max_body in bytes, 0 for no cap.
func (r Router) MaxBodyBytes() int64 {
	if r.MaxBody == "" {
		return 0
	}
	n, _ := parseBodySize(r.MaxBody)
	return n
}

// validateEdgeOps checks the router's per-app cap on request bodies, the
// timeout of an instance's answer and the spread of a drain's closes.
func (s *Spec) validateEdgeOps(c *collector) {
	if s.Router.MaxBody != "" {
		if _, err := parseBodySize(s.Router.MaxBody); err != nil {
			c.add("router.max_body", "%v", err)
		}
	}
	if d := s.Router.Timeout; d != 0 && d.D() < MinRouterTimeout {
		c.add("router.timeout", "%s is below the %s minimum (leave it out for no limit)", d, MinRouterTimeout)
	}
	if d := s.Retire.DrainSpread; d.D() > MaxDrainSpread {
		c.add("retire.drain_spread", "%s is longer than the %s maximum", d, Duration(MaxDrainSpread))
	}
}
