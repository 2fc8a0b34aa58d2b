package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/valyala/fasthttp"
)

// bodyWriter streams a request body to the upstream while the response is read,
// so an upstream may answer (or refuse) before the whole body has arrived.
type bodyWriter struct {
	uc   *upConn
	done chan error
	over atomic.Bool // set just before done is sent
	// fromMemory is set when the server read the client's whole body before the
	// handler ran: cutting what goes upstream then leaves the client connection sound.
	fromMemory bool
	// clientErr is set, before over, when the client's body was at fault.
	clientErr error
	// n is how many body bytes went upstream; set, like clientErr, before over
	n int64
	// the outcome, once received from done (by the handler's goroutine only)
	err error
	got bool
}

func startBody(uc *upConn, req *fasthttp.Request, cl int, maxBody int64) *bodyWriter {
	b := &bodyWriter{uc: uc, done: make(chan error, 1), fromMemory: cl > 0 && cl <= streamBodiesOver}
	// Reading Body() of a streamed request would pull it all into memory.
	var r io.Reader = req.BodyStream()
	if r == nil {
		r = bytes.NewReader(req.Body())
	}
	if maxBody > 0 {
		r = &capReader{r: r, left: maxBody}
	}
	go b.run(r, cl < 0)
	return b
}

func (b *bodyWriter) run(r io.Reader, chunked bool) {
	n, err := copyRequestBody(b.uc.bw, r, chunked)
	b.n = n
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

// result returns how the body ended, waiting for it when block is set; ok is
// false when it has not ended and block is not set. The outcome is kept, so it
// can be asked for more than once.
func (b *bodyWriter) result(block bool) (err error, ok bool) {
	if !b.got {
		if block {
			b.err = <-b.done
		} else {
			select {
			case b.err = <-b.done:
			default:
				return nil, false
			}
		}
		b.got = true
	}
	return b.err, true
}

// finish reports whether the whole body was sent. A body still being sent when
// the response is over is cut short, and the connection cannot be reused.
func (b *bodyWriter) finish(ctx *fasthttp.RequestCtx) bool {
	if err, ok := b.result(false); ok {
		return err == nil
	}
	b.abort(ctx)
	return false
}

// settle gives a body still being sent when the response head arrived a
// moment to end, and reports whether it did. An upstream often answers as
// soon as it has read the head and reads the rest of the body afterwards
// (Go's net/http does); waiting keeps the client's connection usable for its
// next request instead of cutting it.
func (b *bodyWriter) settle() bool {
	if !b.running() {
		return true
	}
	t := time.NewTimer(bodyGrace)
	defer t.Stop()
	select {
	case b.err = <-b.done:
		b.got = true
		return true
	case <-t.C:
		return false
	}
}

// bodyGrace is how long settle waits.
const bodyGrace = 250 * time.Millisecond

// abort stops the body. Closing the upstream connection ends a write to it; a
// read still blocked on the client is woken by a read deadline. Whenever the
// client's body was not read to its end, its connection cannot carry another
// request and is closed after the response.
func (b *bodyWriter) abort(ctx *fasthttp.RequestCtx) {
	b.uc.Conn.Close()
	if b.fromMemory {
		b.result(true) // it reads no client bytes, so the closed upstream ends it
		return
	}
	if err, ok := b.result(false); ok {
		if err != nil {
			ctx.SetConnectionClose()
		}
		return
	}
	ctx.SetConnectionClose()
	_ = ctx.Conn().SetReadDeadline(time.Now())
	b.result(true)
}

func copyRequestBody(bw *bufio.Writer, r io.Reader, chunked bool) (int64, error) {
	bufp := bufPool.Get().(*[]byte)
	defer bufPool.Put(bufp)
	buf := *bufp
	var dst io.Writer = bw
	var cw io.WriteCloser
	if chunked {
		cw = httputil.NewChunkedWriter(bw)
		dst = cw
	}
	var total int64
	for {
		n, rerr := r.Read(buf)
		if n > 0 {
			if _, err := dst.Write(buf[:n]); err != nil {
				return total, err
			}
			total += int64(n)
			if chunked {
				// A streamed body is passed on as it comes, not when a buffer fills.
				if err := bw.Flush(); err != nil {
					return total, err
				}
			}
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			return total, clientBodyError{rerr}
		}
	}
	if chunked {
		if err := cw.Close(); err != nil {
			return total, err
		}
		bw.WriteString("\r\n")
	}
	return total, bw.Flush()
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// clientBodyError is a failure to read the request body from the client.
type clientBodyError struct{ err error }

func (e clientBodyError) Error() string { return "reading request body: " + e.err.Error() }

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

// upgradeOrRespond handles the answer to an upgrade request: a switch of
// protocols (WebSocket) takes the connection over; any other answer is passed on.
func (x *exchange) upgradeOrRespond(uc *upConn, body *bodyWriter, want string) {
	ctx, t := x.ctx, uc.t
	var resp *http.Response
	var err error
	for {
		resp, err = http.ReadResponse(uc.br, nil)
		// Informational answers before the final one are passed over, as elsewhere.
		if err != nil || resp.StatusCode >= 200 || resp.StatusCode == http.StatusSwitchingProtocols {
			break
		}
	}
	if err != nil {
		t.dropConn(uc)
		if body != nil {
			body.abort(ctx)
		}
		if x.f.app.timeout > 0 && errors.Is(err, os.ErrDeadlineExceeded) {
			x.timeout(t)
			return
		}
		x.fail(http.StatusBadGateway, "bad response from "+t.addr+": "+shortErr(err))
		return
	}
	if x.f.app.timeout > 0 {
		uc.Conn.SetReadDeadline(time.Time{})
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		rh := &ctx.Response.Header
		rh.SetStatusCode(resp.StatusCode)
		for k, vv := range resp.Header {
			for _, v := range vv {
				rh.Add(k, v)
			}
		}
		cleanResponseHeader(rh)
		rh.Set(x.tbl.reqID, x.reqID)
		x.status = resp.StatusCode
		x.deferred = true
		ctx.Response.SetBodyStream(&respBody{x: x, uc: uc, body: body, r: resp.Body, close: true}, int(max(resp.ContentLength, -1)))
		return
	}
	if !offered(want, resp.Header["Upgrade"]) {
		t.dropConn(uc)
		x.fail(http.StatusBadGateway, "upstream "+t.addr+" switched protocols without being asked")
		return
	}
	if body != nil {
		// The connection changes hands now: whatever of the body is still
		// being sent is stopped first.
		body.finish(ctx)
	}
	resp.Header.Set(x.tbl.reqID, x.reqID)
	x.status = http.StatusSwitchingProtocols
	end := time.Now()
	x.f.stats.record(end, x.status, end.Sub(x.start), 0, 0)
	t.stats.record(end, x.status, end.Sub(x.start), 0, 0)
	x.recorded = true
	x.deferred = true
	if g, ok := ctx.Conn().(*guardConn); ok {
		// Only now is the connection no longer HTTP: the framing guard stops here.
		g.switched()
	}
	ctx.HijackSetNoResponse(true)
	ctx.Hijack(func(c net.Conn) {
		defer x.finish()
		pair := &upgradedPair{client: c, upstream: uc.Conn}
		defer t.dropConn(uc)
		defer pair.Close()
		// Counted before the client hears of the switch, so that a drain or a
		// shutdown never misses a connection the client already holds open.
		if !t.trackUpgrade(pair) {
			return
		}
		defer t.untrackUpgrade(pair)
		x.f.stats.upgraded.Add(1)
		t.stats.upgraded.Add(1)
		defer x.f.stats.upgraded.Add(-1)
		defer t.stats.upgraded.Add(-1)
		var head bytes.Buffer
		head.WriteString("HTTP/1.1 101 Switching Protocols\r\n")
		resp.Header.Write(&head)
		head.WriteString("\r\n")
		if _, err := c.Write(head.Bytes()); err != nil {
			return
		}

		var in int64
		up := make(chan struct{})
		go func() {
			defer close(up)
			in, _ = io.Copy(uc.Conn, c)
			pair.Close()
		}()
		out, _ := io.Copy(c, uc.br)
		pair.Close()
		<-up
		now := time.Now()
		x.f.stats.addBytes(now, in, out)
		t.stats.addBytes(now, in, out)
	})
}

// offered reports whether every protocol the upstream switched to is one the
// client asked for.
func offered(asked string, chosen []string) bool {
	if len(chosen) == 0 {
		return false
	}
	for _, v := range chosen {
		for _, tok := range strings.Split(v, ",") {
			if !headerListContains([]byte(asked), []byte(strings.TrimSpace(tok))) {
				return false
			}
		}
	}
	return true
}
