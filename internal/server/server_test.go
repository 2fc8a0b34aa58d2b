package server

import (
	"net"
	"testing"
)

// The API authenticates every call, so it may listen anywhere; the server
// warns when a listener other than loopback carries tokens in plain HTTP.
func TestLoopbackListenersAreRecognised(t *testing.T) {
	for addr, want := range map[string]bool{"127.0.0.1:0": true, "127.0.0.2:0": true, "0.0.0.0:0": false} {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("listening on %s: %v", addr, err)
		}
		if got := isLoopback(ln.Addr()); got != want {
			t.Errorf("isLoopback(%s) = %v, want %v", ln.Addr(), got, want)
		}
		ln.Close()
	}
}
