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
	"os"
	"strconv"
	"strings"
)

// lowest port considered; below it live well-known services.
const lowest = 10000

// ephemeralStart is where the kernel's ephemeral range begins (32768 when
// it cannot be read).
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if n, err := strconv.Atoi(f[0]); err == nil {
				return n
			}
		}
	}
	return 32768
}

// Addr returns a free "127.0.0.1:PORT" outside the ephemeral range.
func Addr() (string, error) {
	hi := ephemeralStart()
	if hi-lowest < 1000 {
		hi = 65536 // no room below: fall back to the whole range
	}
	for range 200 {
		port := lowest + rand.IntN(hi-lowest)
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
