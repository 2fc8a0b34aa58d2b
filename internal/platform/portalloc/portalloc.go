// Package portalloc hands out the ports instances listen on.
//
// Ports are picked at random below the kernel's ephemeral range and found
// free by listening on them; ports that instances already hold and ports
// promised to launches still in progress are skipped. The kernel hands
// ports of the ephemeral range to every outgoing connection (the router's
// health checks and its connections to targets, thousands a second with
// thousands of instances): a port of that range found free is often taken
// by one before the instance binds it, and each instance listening there
// leaves outgoing connections one port fewer. Another program could still
// take the port between the check and the instance's bind; the instance
// then fails to start or to answer its health check, and the engine
// launches a replacement. Without room below the ephemeral range, the
// kernel picks (port 0).
package portalloc

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

// lowest is the lowest port handed out: below it live well-known services.
const lowest = 10000

// KeptLow and KeptHigh bound the ports [KeptLow, KeptHigh) kept for the
// engine's internal addresses of stacks (internal/engine): chosen once,
// kept in the store, and bound only while their fleet runs, so no instance
// may take one meanwhile.
const (
	KeptLow  = 20000
	KeptHigh = 30000
)

// Kept says whether port is one of those kept for internal addresses.
func Kept(port int) bool { return port >= KeptLow && port < KeptHigh }

// Allocator hands out ports on one host address. The zero value is not
// usable; call New.
type Allocator struct {
	host   string
	lo, hi int // ports are picked in [lo, hi); hi == 0: the kernel picks

	mu       sync.Mutex
	reserved map[int]bool // ports of launches in progress
}

// New returns an allocator of ports on host ("127.0.0.1").
func New(host string) *Allocator {
	a := &Allocator{host: host, reserved: map[int]bool{}}
	if hi := EphemeralStart(); hi-lowest >= 1000 {
		a.lo, a.hi = lowest, hi
	}
	return a
}

// EphemeralStart is where the kernel's ephemeral range begins (32768 when
// it cannot be read).
func EphemeralStart() int {
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

// Allocate returns a free port that used does not hold and no other
// allocation in progress was given. release must be called once the
// instance holds the port in a way used will report (its record is written,
// its container exists), or once the launch has failed.
func (a *Allocator) Allocate(used map[int]bool) (port int, release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	reserve := func(port int) (int, func(), error) {
		a.reserved[port] = true
		return port, func() {
			a.mu.Lock()
			delete(a.reserved, port)
			a.mu.Unlock()
		}, nil
	}
	if a.hi > 0 {
		for range 200 {
			port := a.lo + rand.IntN(a.hi-a.lo)
			if used[port] || a.reserved[port] || Kept(port) {
				continue
			}
			l, err := net.Listen("tcp", net.JoinHostPort(a.host, strconv.Itoa(port)))
			if err != nil {
				continue // another program's
			}
			l.Close()
			return reserve(port)
		}
	}
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(a.host, "0"))
		if err != nil {
			return 0, nil, fmt.Errorf("finding a free port on %s: %w", a.host, err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !used[port] && !a.reserved[port] && !Kept(port) {
			return reserve(port)
		}
	}
	return 0, nil, fmt.Errorf("finding a free port on %s: every port offered is taken by an instance", a.host)
}

// Reserved reports whether port is promised to a launch in progress.
func (a *Allocator) Reserved(port int) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reserved[port]
}
