package router

import (
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/valyala/fasthttp"
)

// HTTP/2 streams are served by the same handler as HTTP/1.1 requests: each
// stream becomes a fasthttp request, the handler routes and forwards it
// (tables, weights, stickiness, retries, metrics, drains: one code path),
// and its response, streamed or whole, is written back to the stream.
// Upstreams are spoken to in HTTP/1.1, as for every other request.

var h2ctxPool = sync.Pool{New: func() any { return new(fasthttp.RequestCtx) }}

// hopHeaders are connection-specific fields that HTTP/2 forbids in a response.
var hopHeaders = map[string]bool{
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true,
	"Transfer-Encoding": true, "Upgrade": true, "Te": true,
}

func (f *tlsFront) serveH2Stream(w http.ResponseWriter, req *http.Request) {
	ctx := h2ctxPool.Get().(*fasthttp.RequestCtx)
	defer h2ctxPool.Put(ctx)
	ctx.Request.Reset()
	ctx.Response.Reset()
	ctx.Init2(&streamConn{local: f.raw.Addr(), remote: remoteAddr(req.RemoteAddr), gone: req.Context().Done()}, fastLogger{f.r.log}, true)
	rh := &ctx.Request.Header
	rh.SetMethod(req.Method)
	rh.SetRequestURI(req.RequestURI)
	rh.SetHost(req.Host)
	for k, vs := range req.Header {
		if k == "Host" || k == "Expect" || k == "Content-Length" {
			continue
		}
		for _, v := range vs {
			rh.Add(k, v)
		}
	}
	if req.ContentLength != 0 && req.Body != nil && req.Body != http.NoBody {
		// -1 (no length given) goes upstream chunked.
		ctx.Request.SetBodyStream(req.Body, int(req.ContentLength))
	}
	f.h.serveAt(ctx, time.Now())

	resp := &ctx.Response
	hdr := w.Header()
	resp.Header.VisitAll(func(k, v []byte) {
		key := string(k)
		if hopHeaders[key] || key == "Content-Length" {
			return
		}
		hdr.Add(key, string(v))
	})
	if n := resp.Header.ContentLength(); n >= 0 && !resp.IsBodyStream() {
		hdr.Set("Content-Length", strconv.Itoa(len(resp.Body())))
	} else if n >= 0 {
		hdr.Set("Content-Length", strconv.Itoa(n))
	}
	w.WriteHeader(resp.StatusCode())
	if !resp.IsBodyStream() {
		if req.Method != http.MethodHead {
			_, _ = w.Write(resp.Body())
		}
		return
	}
	copyStream(w, resp.BodyStream())
	// Closing the stream finishes the exchange: metrics, pooled connection.
	_ = resp.CloseBodyStream()
}

// copyStream copies a response body to the stream, flushing each piece as it
// comes so that server-sent events and long polls are not held back.
func copyStream(w http.ResponseWriter, r io.Reader) {
	fl, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := r.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return
			}
			if fl != nil {
				fl.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

func remoteAddr(s string) net.Addr {
	if ap, err := net.ResolveTCPAddr("tcp", s); err == nil {
		return ap
	}
	return &net.TCPAddr{}
}

// streamConn stands for the connection of an HTTP/2 stream in a
// RequestCtx: it has the addresses and nothing to read or write.
type streamConn struct {
	local, remote net.Addr
	gone          <-chan struct{} // closed when the client resets the stream or leaves
}

var errStreamConn = errors.New("an HTTP/2 stream has no connection of its own")

func (c *streamConn) Read([]byte) (int, error)         { return 0, errStreamConn }
func (c *streamConn) Write([]byte) (int, error)        { return 0, errStreamConn }
func (c *streamConn) Close() error                     { return nil }
func (c *streamConn) LocalAddr() net.Addr              { return c.local }
func (c *streamConn) RemoteAddr() net.Addr             { return c.remote }
func (c *streamConn) SetDeadline(time.Time) error      { return nil }
func (c *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (c *streamConn) SetWriteDeadline(time.Time) error { return nil }
