package router

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/http/httpguts"
)

// expectContinueTimeout is how long the request body waits for the upstream's
// 100 Continue before it is sent anyway, as net/http's Transport does.
const expectContinueTimeout = time.Second

// bodyWriter streams a request body to the upstream while the response is read,
// so an upstream may answer (or refuse) before the whole body has arrived.
type bodyWriter struct {
	uc   *upConn
	gate chan bool // nil unless the client sent Expect: 100-continue
	done chan error
	over atomic.Bool // set just before done is sent
	once sync.Once
	// clientErr is set, before over, when the client's body was at fault.
	clientErr error
}

func startBody(uc *upConn, req *http.Request) *bodyWriter {
	b := &bodyWriter{uc: uc, done: make(chan error, 1)}
	if httpguts.HeaderValuesContainsToken(req.Header["Expect"], "100-continue") {
		b.gate = make(chan bool, 1)
	}
	go b.run(req)
	return b
}

func (b *bodyWriter) run(req *http.Request) {
	if b.gate != nil {
		if err := b.uc.bw.Flush(); err != nil {
			b.over.Store(true)
			b.done <- err
			return
		}
		t := time.NewTimer(expectContinueTimeout)
		select {
		case ok := <-b.gate:
			t.Stop()
			if !ok {
				b.over.Store(true)
				b.done <- errBodySkipped
				return
			}
		case <-t.C:
		}
	}
	err := copyRequestBody(b.uc.bw, req)
	var ce clientBodyError
	if errors.As(err, &ce) {
		b.clientErr = ce.err
	}
	if err != nil {
		// Unblock the reader of the response: this request cannot complete.
		b.uc.Conn.Close()
	}
	b.over.Store(true)
	b.done <- err
}

// running reports whether the body is still being sent.
func (b *bodyWriter) running() bool { return !b.over.Load() }

// release lets the body go (ok) or tells it the upstream answered without it.
func (b *bodyWriter) release(ok bool) {
	if b.gate == nil {
		return
	}
	b.once.Do(func() { b.gate <- ok })
}

// finish reports whether the whole body was sent. A body still being sent when
// the response is over is cut short, and the connection cannot be reused.
func (b *bodyWriter) finish(w http.ResponseWriter) bool {
	select {
	case err := <-b.done:
		return err == nil
	default:
	}
	b.abort(w)
	return false
}

// abort stops the body: the upstream connection is closed, which ends a write
// to it; a read still blocked on the client is woken by a read deadline. That
// deadline spoils the client connection for later requests (net/http cancels
// the connection's context), so the response must close it: writeResponse says
// "Connection: close" whenever the body is still running when the head goes out.
func (b *bodyWriter) abort(w http.ResponseWriter) {
	b.release(false)
	b.uc.Conn.Close()
	select {
	case <-b.done:
		return
	default:
	}
	w.Header().Set("Connection", "close")
	_ = http.NewResponseController(w).SetReadDeadline(time.Now())
	<-b.done
}

func copyRequestBody(bw interface {
	io.Writer
	Flush() error
	WriteString(string) (int, error)
}, req *http.Request) error {
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	chunked := req.ContentLength < 0
	var dst io.Writer = bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(bw)
		dst = cw
	}
	for {
		n, rerr := req.Body.Read(buf)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return err
			}
			if chunked {
				// A streamed body is passed on as it comes, not when a buffer fills.
				if err := bw.Flush(); err != nil {
					return err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return clientBodyError{rerr}
		}
	}
	if chunked {
		if err := cw.Close(); err != nil {
			return err
		}
		for k, vv := range req.Trailer {
			for _, v := range vv {
				bw.WriteString(k + ": " + v + "\r\n")
			}
		}
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// clientBodyError is a failure to read the request body from the client.
type clientBodyError struct{ err error }

func (e clientBodyError) Error() string { return "reading request body: " + e.err.Error() }

func contextAfterFunc(req *http.Request, f func()) func() bool {
	return context.AfterFunc(req.Context(), f)
}

// upgradedPair is a client connection and its upstream after a protocol switch.
type upgradedPair struct {
	client, upstream io.Closer
	once             sync.Once
}

func (p *upgradedPair) Close() error {
	p.once.Do(func() {
		p.client.Close()
		p.upstream.Close()
	})
	return nil
}

// upgrade hands the connection over to the protocol the upstream switched to
// (WebSocket) and copies bytes both ways until either side closes.
func (x *exchange) upgrade(t *target, uc *upConn, resp *http.Response, want string) {
	if want == "" || !httpguts.HeaderValuesContainsToken(resp.Header["Upgrade"], want) {
		t.dropConn(uc)
		x.fail(http.StatusBadGateway, "upstream "+t.addr+" switched protocols without being asked")
		return
	}
	cconn, cbrw, err := http.NewResponseController(x.w).Hijack()
	if err != nil {
		t.dropConn(uc)
		x.fail(http.StatusInternalServerError, "cannot take over the connection: "+err.Error())
		return
	}
	resp.Header.Set(x.tbl.reqID, x.reqID)
	cbrw.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
	resp.Header.Write(cbrw)
	cbrw.WriteString("\r\n")
	x.status = http.StatusSwitchingProtocols
	end := time.Now()
	x.f.stats.record(end, x.status, end.Sub(x.start), 0, 0)
	t.stats.record(end, x.status, end.Sub(x.start), 0, 0)
	x.recorded = true

	pair := &upgradedPair{client: cconn, upstream: uc.Conn}
	defer t.dropConn(uc)
	defer pair.Close()
	if err := cbrw.Flush(); err != nil || !t.trackUpgrade(pair) {
		return
	}
	defer t.untrackUpgrade(pair)
	x.f.stats.upgraded.Add(1)
	t.stats.upgraded.Add(1)
	defer x.f.stats.upgraded.Add(-1)
	defer t.stats.upgraded.Add(-1)

	up := make(chan struct{})
	go func() {
		defer close(up)
		io.Copy(uc.Conn, cbrw.Reader)
		pair.Close()
	}()
	io.Copy(cconn, uc.br)
	pair.Close()
	<-up
}
