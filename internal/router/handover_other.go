//go:build !linux

package router

import (
	"errors"
	"net"
)

// rearm has nothing to do where there is no event loop.
func (*loopListener) rearm() {}

func (*loopListener) socket() net.Listener { return nil }

// peerPid needs the peer credentials of Linux.
func peerPid(*net.UnixConn) (int, error) { return 0, errors.New("peer credentials need Linux") }
