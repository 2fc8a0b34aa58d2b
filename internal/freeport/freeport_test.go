package freeport

import (
	"net"
	"strconv"
	"testing"

	"bluegreen/internal/platform/portalloc"
)

// Calls in a row never give the same port (a test's production and test
// listeners), nor one kept for stacks' internal addresses.
func TestAddrGivesEachPortOnce(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		addr := Must(t)
		if seen[addr] {
			t.Fatalf("%s given twice", addr)
		}
		seen[addr] = true
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatal(err)
		}
		if port, _ := strconv.Atoi(p); portalloc.Kept(port) || port < lowest {
			t.Fatalf("%s: below %d or kept for internal addresses", addr, lowest)
		}
	}
}
