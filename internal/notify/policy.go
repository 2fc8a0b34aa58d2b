package notify

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
)

// Policy decides which addresses notifications may be sent to. Whoever
// may deploy writes the spec, and so the URL: without a policy, a deployer
// could make the server POST to what only the server reaches (a database's
// HTTP port, a cloud metadata service, the router's admin API). By default
// only public addresses are allowed; Allow adds networks, such as the
// internal one a chat server runs on.
//
// The policy is applied to the address actually dialled, after the name
// is resolved, so that a name resolving to an internal address (or one that
// changes between a check and the connection) is refused too.
type Policy struct {
	Allow []netip.Prefix
}

// ParseAllow reads the networks of --notify-allow: CIDR prefixes
// (10.0.0.0/8) or single addresses (127.0.0.1).
func ParseAllow(items []string) (Policy, error) {
	var p Policy
	for _, it := range items {
		it = strings.TrimSpace(it)
		if it == "" {
			continue
		}
		if pre, err := netip.ParsePrefix(it); err == nil {
			p.Allow = append(p.Allow, pre.Masked())
			continue
		}
		a, err := netip.ParseAddr(it)
		if err != nil {
			return Policy{}, fmt.Errorf("--notify-allow %q: want a network like 10.0.0.0/8 or an address like 127.0.0.1", it)
		}
		a = a.Unmap()
		p.Allow = append(p.Allow, netip.PrefixFrom(a, a.BitLen()))
	}
	return p, nil
}

// special are networks that are not public though the net package does
// not say so: shared address space (carrier NAT), IETF protocol
// assignments, benchmarking, documentation, reserved, and NAT64 (which
// reaches IPv4 addresses behind it).
var special = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("100.64.0.0/10"),
	netip.MustParsePrefix("192.0.0.0/24"),
	netip.MustParsePrefix("192.0.2.0/24"),
	netip.MustParsePrefix("198.18.0.0/15"),
	netip.MustParsePrefix("198.51.100.0/24"),
	netip.MustParsePrefix("203.0.113.0/24"),
	netip.MustParsePrefix("240.0.0.0/4"),
	netip.MustParsePrefix("64:ff9b::/96"),
	netip.MustParsePrefix("64:ff9b:1::/48"),
	netip.MustParsePrefix("2001:db8::/32"),
}

// Check says why a is refused, or nil.
func (p Policy) Check(a netip.Addr) error {
	a = a.Unmap()
	for _, pre := range p.Allow {
		if pre.Contains(a) {
			return nil
		}
	}
	kind := ""
	switch {
	case a.IsLoopback():
		kind = "a loopback address"
	case a.IsPrivate():
		kind = "a private address"
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		kind = "a link-local address"
	case a.IsUnspecified(), a.IsMulticast(), a.IsInterfaceLocalMulticast():
		kind = "not a unicast address"
	default:
		for _, pre := range special {
			if pre.Contains(a) {
				kind = "a reserved address (" + pre.String() + ")"
				break
			}
		}
	}
	if kind == "" {
		return nil
	}
	return &RefusedError{Addr: a, Why: kind}
}

// RefusedError is a destination address the policy does not allow.
type RefusedError struct {
	Addr netip.Addr
	Why  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("%s is %s, and the server's --notify-allow does not list it", e.Addr, e.Why)
}

// control is a net.Dialer's Control: it runs for each address a
// connection is attempted to, after name resolution.
func (p Policy) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return err
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return fmt.Errorf("dialling %s: not an IP address", address)
	}
	return p.Check(a)
}
