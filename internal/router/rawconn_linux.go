package router

import (
	"io"
	"net"
	"os"
	"sync"
	"syscall"
)

// rawTCPConn is a TCP connection of the goroutine server (a TLS client's, or
// one to a target) whose reads and writes are raw system calls, as the event
// loop's are (see rawRead): Go's poller still parks the goroutine when the
// socket is not ready and keeps the deadlines, but the scheduler is not told
// of the calls, so sysmon does not hand the processor to another thread while
// one runs. Errors are the ones net.TCPConn gives; every other method is
// net.TCPConn's.
type rawTCPConn struct {
	*net.TCPConn
	rc syscall.RawConn

	// The calls RawConn makes, made once: a closure per call would be an
	// allocation per read and per write. Their arguments and results are
	// in the fields below, which the mutexes keep to one read and one
	// write at a time.
	readFn, writeFn func(fd uintptr) bool
	rmu, wmu        sync.Mutex
	rp, wp          []byte
	rn, wn          int
	rerr, werr      error
}

// rawSyscallConn returns c with raw reads and writes when it is a TCP
// connection, and c itself otherwise.
func rawSyscallConn(c net.Conn) net.Conn {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	rt := &rawTCPConn{TCPConn: tc, rc: rc}
	rt.readFn, rt.writeFn = rt.readFD, rt.writeFD
	return rt
}

func (c *rawTCPConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.rmu.Lock()
	defer c.rmu.Unlock()
	c.rp, c.rn, c.rerr = p, 0, nil
	err := c.rc.Read(c.readFn)
	n, errno := c.rn, c.rerr
	c.rp = nil
	switch {
	case err != nil:
		return 0, c.opError("read", err)
	case errno != nil:
		return 0, c.opError("read", os.NewSyscallError("read", errno))
	case n == 0:
		return 0, io.EOF
	}
	return n, nil
}

func (c *rawTCPConn) readFD(fd uintptr) bool {
	for {
		n, err := rawRead(int(fd), c.rp)
		switch err {
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			return false // RawConn waits in the poller until readable, then calls again
		case nil:
			c.rn = n
		default:
			c.rerr = err
		}
		return true
	}
}

func (c *rawTCPConn) Write(p []byte) (int, error) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	c.wp, c.wn, c.werr = p, 0, nil
	err := c.rc.Write(c.writeFn)
	n, errno := c.wn, c.werr
	c.wp = nil
	switch {
	case err != nil:
		return n, c.opError("write", err)
	case errno == io.ErrUnexpectedEOF:
		return n, c.opError("write", errno)
	case errno != nil:
		return n, c.opError("write", os.NewSyscallError("write", errno))
	}
	return n, nil
}

func (c *rawTCPConn) writeFD(fd uintptr) bool {
	for c.wn < len(c.wp) {
		n, err := rawWrite(int(fd), c.wp[c.wn:])
		switch err {
		case nil:
			if n == 0 {
				c.werr = io.ErrUnexpectedEOF // as net.TCPConn: a write that took nothing
				return true
			}
			c.wn += n
		case syscall.EINTR:
		case syscall.EAGAIN:
			return false // RawConn waits in the poller until writable, then calls again
		default:
			c.werr = err
			return true
		}
	}
	return true
}

// opError wraps err as net.TCPConn does; err may come from RawConn, which
// wraps its own errors (a deadline, a closed connection) as a "raw-read" or
// "raw-write" operation.
func (c *rawTCPConn) opError(op string, err error) error {
	if oe, ok := err.(*net.OpError); ok {
		err = oe.Err
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}
