package portalloc

import (
	"net"
	"strconv"
	"testing"
)

// Ports come from below the kernel's ephemeral range, free, never one an
// instance holds or one promised to another launch, and again once released.
func TestAllocateBelowTheEphemeralRange(t *testing.T) {
	a := New("127.0.0.1")
	if a.hi == 0 {
		t.Skip("no room below the ephemeral range on this machine")
	}
	used := map[int]bool{}
	for port := a.lo; port < a.lo+(a.hi-a.lo)/2; port++ {
		used[port] = true // half the range held by instances
	}
	seen := map[int]bool{}
	var releases []func()
	for range 200 {
		port, release, err := a.Allocate(used)
		if err != nil {
			t.Fatal(err)
		}
		if port < a.lo || port >= a.hi || used[port] || seen[port] || Kept(port) {
			t.Fatalf("port %d: outside [%d, %d), held by an instance, kept for internal addresses, or handed out twice", port, a.lo, a.hi)
		}
		seen[port] = true
		releases = append(releases, release)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatalf("port %d is not free: %v", port, err)
		}
		l.Close()
	}
	for _, r := range releases {
		r()
	}
	if len(a.reserved) != 0 {
		t.Fatalf("%d ports still reserved after every release", len(a.reserved))
	}
}
