// Package testws opens WebSockets for tests, keeping the TCP connection
// under each so that a test can tell which process holds its other end.
package testws

import (
	"context"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// Dial opens a WebSocket to ws://addr/ws and returns it with the TCP
// connection it runs on. It is closed when the test ends.
func Dial(t testing.TB, addr string) (*websocket.Conn, net.Conn) {
	t.Helper()
	var raw net.Conn
	tr := &http.Transport{DialContext: func(ctx context.Context, network, a string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, a)
		raw = c
		return c, err
	}}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ws, _, err := websocket.Dial(ctx, "ws://"+addr+"/ws", &websocket.DialOptions{HTTPClient: &http.Client{Transport: tr}})
	if err != nil {
		t.Fatalf("WebSocket to %s: %v", addr, err)
	}
	t.Cleanup(func() { ws.CloseNow() })
	return ws, raw
}

// Echo sends msg and fails the test unless the same message comes back
// within 10 seconds.
func Echo(t testing.TB, ws *websocket.Conn, msg string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ws.Write(ctx, websocket.MessageText, []byte(msg)); err != nil {
		t.Fatalf("WebSocket write %q: %v", msg, err)
	}
	if _, b, err := ws.Read(ctx); err != nil || string(b) != msg {
		t.Fatalf("WebSocket echo of %q: %q %v", msg, b, err)
	}
}

// EchoServer accepts a WebSocket and sends every message back until the
// client goes away.
func EchoServer(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, msg); err != nil {
			return
		}
	}
}
