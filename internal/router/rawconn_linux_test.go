package router

import (
	"bytes"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// rawPair is a loopback TCP connection: the router's end with raw reads and
// writes, and the peer's plain one.
func rawPair(t *testing.T) (raw net.Conn, peer net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	acc := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		acc <- c
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	peer = <-acc
	if peer == nil {
		t.Fatal("accept failed")
	}
	raw = rawSyscallConn(c)
	if _, ok := raw.(*rawTCPConn); !ok {
		t.Fatalf("rawSyscallConn gave %T", raw)
	}
	t.Cleanup(func() { raw.Close(); peer.Close() })
	return raw, peer
}

// The raw connection carries data both ways, with back-pressure, and ends
// and fails as a net.TCPConn does.
func TestRawTCPConnBehavesAsTCPConn(t *testing.T) {
	raw, peer := rawPair(t)
	// More than the socket buffers hold: the write waits for the reader.
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<18) // 4 MiB
	got := make(chan []byte, 1)
	go func() {
		b, _ := io.ReadAll(io.LimitReader(peer, int64(len(big))))
		got <- b
	}()
	if n, err := raw.Write(big); n != len(big) || err != nil {
		t.Fatalf("write: %d, %v", n, err)
	}
	if b := <-got; !bytes.Equal(b, big) {
		t.Fatalf("peer read %d bytes, not what was written", len(b))
	}
	// And the other way, in pieces as they come.
	go peer.Write(big)
	b, err := io.ReadAll(io.LimitReader(raw, int64(len(big))))
	if err != nil || !bytes.Equal(b, big) {
		t.Fatalf("read %d bytes: %v", len(b), err)
	}
	if n, err := raw.Read(nil); n != 0 || err != nil {
		t.Fatalf("empty read: %d, %v", n, err)
	}

	// A read past its deadline fails as a timeout, and the connection lives on.
	raw.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	_, err = raw.Read(make([]byte, 8))
	var ne net.Error
	var op *net.OpError
	if !errors.Is(err, os.ErrDeadlineExceeded) || !errors.As(err, &ne) || !ne.Timeout() ||
		!errors.As(err, &op) || op.Op != "read" || op.Net != "tcp" || shortErr(err) != "i/o timeout" {
		t.Fatalf("read past its deadline: %#v", err)
	}
	raw.SetReadDeadline(time.Time{})
	peer.Write([]byte("after"))
	buf := make([]byte, 8)
	if n, err := raw.Read(buf); string(buf[:n]) != "after" || err != nil {
		t.Fatalf("read after the deadline was lifted: %q, %v", buf[:n], err)
	}

	// A read waiting when the connection is closed returns net.ErrClosed.
	done := make(chan error, 1)
	go func() {
		_, err := raw.Read(buf)
		done <- err
	}()
	time.AfterFunc(20*time.Millisecond, func() { raw.Close() })
	if err := <-done; !errors.Is(err, net.ErrClosed) || !errors.As(err, &op) || op.Op != "read" {
		t.Fatalf("read on a closed connection: %#v", err)
	}
	if _, err := raw.Write([]byte("x")); !errors.Is(err, net.ErrClosed) || !errors.As(err, &op) || op.Op != "write" {
		t.Fatalf("write on a closed connection: %#v", err)
	}
}

// The peer's close is io.EOF; its reset is the system's error, as from net.TCPConn.
func TestRawTCPConnEndAndReset(t *testing.T) {
	raw, peer := rawPair(t)
	peer.Close()
	if n, err := raw.Read(make([]byte, 8)); n != 0 || err != io.EOF {
		t.Fatalf("read after the peer closed: %d, %v", n, err)
	}

	raw, peer = rawPair(t)
	peer.(*net.TCPConn).SetLinger(0)
	peer.Close() // a reset
	_, err := raw.Read(make([]byte, 8))
	var op *net.OpError
	var se *os.SyscallError
	if !errors.As(err, &op) || op.Op != "read" || !errors.As(err, &se) || se.Syscall != "read" {
		t.Fatalf("read after a reset: %#v", err)
	}
}
