// Package portalloc hands out the ports instances listen on.
//
// The kernel offers a free port (listen on port 0, close); ports that
// instances already hold and ports promised to launches still in progress are
// skipped. Another program could take the port between the close and the
// instance's bind; the instance then fails to start or to answer its health
// check, and the engine launches a replacement.
package portalloc

import (
	"fmt"
	"net"
	"sync"
)

// Allocator hands out ports on one host address. The zero value is not
// usable; call New.
type Allocator struct {
	host string

	mu       sync.Mutex
	reserved map[int]bool // ports of launches in progress
}

// New returns an allocator of ports on host ("127.0.0.1").
func New(host string) *Allocator {
	return &Allocator{host: host, reserved: map[int]bool{}}
}

// Allocate returns a free port that used does not hold and no other
// allocation in progress was given. release must be called once the
// instance holds the port in a way used will report (its record is written,
// its container exists), or once the launch has failed.
func (a *Allocator) Allocate(used map[int]bool) (port int, release func(), err error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for range 50 {
		l, err := net.Listen("tcp", net.JoinHostPort(a.host, "0"))
		if err != nil {
			return 0, nil, fmt.Errorf("finding a free port on %s: %w", a.host, err)
		}
		port = l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !used[port] && !a.reserved[port] {
			a.reserved[port] = true
			return port, func() {
				a.mu.Lock()
				delete(a.reserved, port)
				a.mu.Unlock()
			}, nil
		}
	}
	return 0, nil, fmt.Errorf("finding a free port on %s: every port offered is taken by an instance", a.host)
}
