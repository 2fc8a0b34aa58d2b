package router

import (
	"container/list"
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http2"
)

// Bounds of the TLS handshakes of a listener; variables so tests can shorten them.
var (
	// handshakeTimeout is what a client gets to finish its handshake: a
	// client that sends half a ClientHello, or nothing, holds no more.
	handshakeTimeout = 10 * time.Second
	// maxHandshakes caps the handshakes in progress on a listener. Past it
	// the oldest one is closed to make room: a flood of ClientHellos that
	// never end costs bounded memory, while a real client, whose handshake
	// takes a few round trips, still gets through.
	maxHandshakes = 2048
)

// tlsFront accepts the connections of a TLS listener. Each handshake runs
// on a goroutine of its own, with a deadline; the protocol the client
// chose then decides where the connection goes: HTTP/1.1 to the
// listener's fasthttp server, h2 to an HTTP/2 server whose streams are
// served by the same handler (see h2bridge.go).
type tlsFront struct {
	r    *Router
	addr string
	raw  net.Listener
	cfg  *tls.Config
	h1   *connQueue
	h2   *http2.Server
	base *http.Server // carries the HTTP/2 server's graceful shutdown
	h    *handler

	done    atomic.Uint64 // handshakes that succeeded
	failed  atomic.Uint64 // handshakes that failed or timed out
	evicted atomic.Uint64 // handshakes closed to make room for newer ones
	warned  failureWarning

	pmu     sync.Mutex
	pending *list.List // the connections in their handshake, oldest first

	handshaking atomic.Int64  // handshakes not yet given to their server
	runDone     chan struct{} // closed when run returns

	mu     sync.Mutex
	h2open map[net.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
}

func newTLSFront(r *Router, l *listener, raw net.Listener) *tlsFront {
	f := &tlsFront{r: r, addr: l.addr, raw: raw, h1: newConnQueue(raw.Addr()), h2open: map[net.Conn]struct{}{},
		h: &handler{r: r, addr: l.addr}, pending: list.New(), runDone: make(chan struct{})}
	f.cfg = &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			set := l.certs.Load()
			if set == nil {
				return nil, errors.New("no certificates on this listener")
			}
			return set.get(hello.ServerName)
		},
	}
	f.h2 = &http2.Server{MaxConcurrentStreams: 250, IdleTimeout: idleTimeout}
	f.base = &http.Server{Handler: http.HandlerFunc(f.serveH2Stream), IdleTimeout: idleTimeout}
	if err := http2.ConfigureServer(f.base, f.h2); err != nil {
		// Only a TLS configuration of the base could be refused, and it has none.
		panic("configuring the HTTP/2 server: " + err.Error())
	}
	return f
}

// run accepts until the raw listener is closed.
func (f *tlsFront) run() {
	defer close(f.runDone)
	for {
		c, err := f.raw.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				continue
			}
			// Out of descriptors, most likely: give the system a moment.
			f.r.log.Warn("accepting a TLS connection", "addr", f.addr, "err", err)
			select {
			case <-f.r.ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
			continue
		}
		f.pmu.Lock()
		if f.pending.Len() >= maxHandshakes {
			e := f.pending.Front()
			f.pending.Remove(e)
			e.Value.(net.Conn).Close()
			e.Value = nil // its handshake learns it was evicted, not failed
			f.evicted.Add(1)
		}
		el := f.pending.PushBack(c)
		f.pmu.Unlock()
		f.handshaking.Add(1)
		go f.handshake(c, el)
	}
}

func (f *tlsFront) handshake(c net.Conn, el *list.Element) {
	// Counted until the connection is with its server (or closed).
	handed := sync.OnceFunc(func() { f.handshaking.Add(-1) })
	defer handed()
	tc := tls.Server(rawSyscallConn(c), f.cfg)
	_ = c.SetDeadline(time.Now().Add(handshakeTimeout))
	err := tc.HandshakeContext(f.r.ctx)
	f.pmu.Lock()
	evicted := el.Value == nil
	f.pending.Remove(el) // a no-op when it was evicted
	f.pmu.Unlock()
	if err != nil {
		if !evicted {
			f.failed.Add(1)
		}
		f.r.log.Debug("TLS handshake failed", "addr", f.addr, "remote", c.RemoteAddr().String(), "err", err)
		f.warnFailures(err)
		c.Close()
		return
	}
	f.done.Add(1)
	_ = c.SetDeadline(time.Time{})
	if tc.ConnectionState().NegotiatedProtocol != "h2" {
		f.h1.give(&guardConn{Conn: tc})
		return
	}
	f.mu.Lock()
	if f.closed {
		f.mu.Unlock()
		tc.Close()
		return
	}
	f.h2open[tc] = struct{}{}
	f.wg.Add(1)
	f.mu.Unlock()
	handed() // a drain that starts now sees it in h2open
	defer func() {
		f.mu.Lock()
		delete(f.h2open, tc)
		f.mu.Unlock()
		f.wg.Done()
	}()
	f.h2.ServeConn(tc, &http2.ServeConnOpts{BaseConfig: f.base, Context: f.r.ctx})
}

// close stops accepting, for the listener's stop.
func (f *tlsFront) close() {
	f.raw.Close()
	f.h1.Close()
}

// drain sends GOAWAY to every HTTP/2 connection and waits for their streams
// until ctx ends, then closes what is left.
func (f *tlsFront) drain(ctx context.Context) {
	f.mu.Lock()
	f.closed = true
	f.mu.Unlock()
	sctx, cancel := context.WithCancel(ctx)
	_ = f.base.Shutdown(sctx) // starts the GOAWAYs; it tracks no connection itself
	cancel()
	done := make(chan struct{})
	go func() { f.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		f.mu.Lock()
		for c := range f.h2open {
			c.Close()
		}
		f.mu.Unlock()
		<-done
	}
}

// connQueue is a net.Listener fed with connections that are already
// accepted (and through their handshake).
type connQueue struct {
	addr net.Addr
	ch   chan net.Conn
	done chan struct{}
	once sync.Once
}

func newConnQueue(addr net.Addr) *connQueue {
	return &connQueue{addr: addr, ch: make(chan net.Conn), done: make(chan struct{})}
}

// Accept implements net.Listener.
func (q *connQueue) Accept() (net.Conn, error) {
	select {
	case c := <-q.ch:
		return c, nil
	case <-q.done:
		return nil, net.ErrClosed
	}
}

// Close implements net.Listener.
func (q *connQueue) Close() error {
	q.once.Do(func() { close(q.done) })
	return nil
}

// Addr implements net.Listener.
func (q *connQueue) Addr() net.Addr { return q.addr }

// give waits until the server takes c, or closes c when the queue is closed.
func (q *connQueue) give(c net.Conn) {
	select {
	case q.ch <- c:
	case <-q.done:
		c.Close()
	}
}
