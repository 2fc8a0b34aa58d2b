// Package freeport picks loopback ports for tests to listen on later.
//
// Asking the kernel for port 0 and closing the listener hands out a port
// from the ephemeral range, which the kernel also hands to every outgoing
// connection and to every other `:0` listener on the machine (other test
// packages running at the same time): the port is often taken again before
// the test binds it. Ports below the ephemeral range are never handed out
// by the kernel, so a port picked at random there and found free stays free
// unless another test, or an instance the platforms start (they pick their
// ports there the same way, internal/platform/portalloc), picks the same one.
package freeport

import (
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"

	"bluegreen/internal/platform/portalloc"
)

// handedOut are the ports this process's tests were given: a port found
// free is free until the test binds it, so two calls in a row (a
// production and a test listener) could otherwise be given the same one.
var handedOut struct {
	sync.Mutex
	ports map[int]bool
}

// lowest port considered; below it live well-known services.
const lowest = 10000

// Addr returns a free "127.0.0.1:PORT" outside the ephemeral range and
// outside the ports the engine keeps for stacks' internal addresses
// (portalloc.Kept), which a listener of a test's must not take either.
func Addr() (string, error) {
	hi := portalloc.EphemeralStart()
	if hi-lowest < 1000 {
		hi = 65536 // no room below: fall back to the whole range
	}
	for range 400 {
		port := lowest + rand.IntN(hi-lowest)
		if portalloc.Kept(port) || !handOut(port) {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		ln.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no free port found between %d and %d", lowest, hi)
}

// Must is Addr for tests: it fails the test when no port is free.
func Must(t interface {
	Helper()
	Fatal(...any)
}) string {
	t.Helper()
	addr, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// handOut records port as given and says whether it was not given before.
// Once most of the range has been handed out, it starts afresh.
func handOut(port int) bool {
	handedOut.Lock()
	defer handedOut.Unlock()
	if handedOut.ports == nil || len(handedOut.ports) > 8000 {
		handedOut.ports = map[int]bool{}
	}
	if handedOut.ports[port] {
		return false
	}
	handedOut.ports[port] = true
	return true
}
