//go:build !linux

package router

import "net"

// rawSyscallConn returns c: raw system calls are made on Linux only.
func rawSyscallConn(c net.Conn) net.Conn { return c }
