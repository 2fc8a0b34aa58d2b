//go:build linux

package router

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// rearm registers the listening socket in every loop again. Registered with
// EPOLLEXCLUSIVE, a socket wakes only some of the epoll sets waiting on it;
// while the predecessor shared it, a wake-up may have gone to its set and
// died with it. A new registration reports at once what is already queued.
func (ll *loopListener) rearm() {
	for _, lp := range ll.e.loops {
		lp.call(func() {
			if ll.fd >= len(lp.fds) || lp.fds[ll.fd].h == nil {
				return // paused after a failed accept; the sweep adds it again
			}
			h := lp.fds[ll.fd].h
			lp.remove(ll.fd)
			if err := lp.add(ll.fd, unix.EPOLLIN|unix.EPOLLEXCLUSIVE, h); err != nil {
				lp.e.r.log.Error("accepting again after the hand-over failed", "addr", ll.addr, "err", err)
			}
		})
	}
}

// socket is the listening socket the loops accept on.
func (ll *loopListener) socket() net.Listener { return ll.tcp }

// peerPid is the pid of the process at the other end of a unix connection.
func peerPid(uc *net.UnixConn) (int, error) {
	rc, err := uc.SyscallConn()
	if err != nil {
		return 0, err
	}
	var pid int
	var cerr error
	rc.Control(func(fd uintptr) {
		var cred *syscall.Ucred
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
		if cerr == nil {
			pid = int(cred.Pid)
		}
	})
	return pid, cerr
}
