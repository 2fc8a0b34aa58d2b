package router

import (
	"bytes"
	"context"
	"net"
	"strconv"
	"sync"
)

// net/http accepts a request with both Content-Length and Transfer-Encoding and
// drops the Content-Length, as RFC 9112 allows. Such a request is the classic
// smuggling vector, and the router refuses it outright. net/http keeps no trace
// of the dropped header, so a guard follows the framing of the raw bytes of each
// connection and records, for every request head, what it carried. The handler
// checks the verdict of its request; the method and target must match, so a
// guard that lost track of the framing is switched off rather than misapplied.

// guardListener wraps accepted connections in a guardConn.
type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c}, nil
}

type guardKey struct{}

func guardContext(ctx context.Context, c net.Conn) context.Context {
	if g, ok := c.(*guardConn); ok {
		return context.WithValue(ctx, guardKey{}, g)
	}
	return ctx
}

type scanState uint8

const (
	scanHead scanState = iota
	scanBody
	scanChunkSize
	scanChunkData
	scanChunkEnd
	scanTrailers
)

// headVerdict is what a request head carried.
type headVerdict struct {
	method, target string
	refuse         string // why the request must be refused; empty when it may pass
}

type guardConn struct {
	net.Conn
	mu       sync.Mutex
	off      bool
	state    scanState
	line     []byte // the head, chunk-size line or trailer being read
	left     int64  // bytes left in a body or chunk
	verdicts []headVerdict
}

// maxGuardLine bounds what the guard buffers; past it net/http refuses the request anyway.
const maxGuardLine = maxHeaderBytes + 4096

func (g *guardConn) Read(p []byte) (int, error) {
	n, err := g.Conn.Read(p)
	if n > 0 {
		g.mu.Lock()
		if !g.off {
			g.scan(p[:n])
		}
		g.mu.Unlock()
	}
	return n, err
}

// pop returns the verdict of the request the handler is serving, if the guard has one.
func (g *guardConn) pop(method, target string) (headVerdict, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	// Verdicts already recorded stay good after scanning stops.
	if len(g.verdicts) == 0 {
		return headVerdict{}, false
	}
	v := g.verdicts[0]
	g.verdicts = g.verdicts[1:]
	if v.method != method || v.target != target {
		g.off, g.verdicts = true, nil
		return headVerdict{}, false
	}
	return v, true
}

func (g *guardConn) scan(b []byte) {
	for len(b) > 0 && !g.off {
		switch g.state {
		case scanHead, scanTrailers:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				g.buffer(b)
				return
			}
			g.buffer(b[:i+1])
			b = b[i+1:]
			if !endsHead(g.line) {
				continue
			}
			if g.state == scanHead {
				g.head(g.line)
			} else {
				g.state = scanHead
			}
			g.line = g.line[:0]
		case scanBody, scanChunkData:
			k := int64(len(b))
			if k > g.left {
				k = g.left
			}
			g.left -= k
			b = b[k:]
			if g.left == 0 {
				if g.state == scanBody {
					g.state = scanHead
				} else {
					g.state = scanChunkEnd
				}
			}
		case scanChunkSize, scanChunkEnd:
			i := bytes.IndexByte(b, '\n')
			if i < 0 {
				g.buffer(b)
				return
			}
			g.buffer(b[:i+1])
			b = b[i+1:]
			line := bytes.TrimRight(g.line, "\r\n")
			g.line = g.line[:0]
			if g.state == scanChunkEnd {
				if len(line) != 0 {
					g.off = true
				}
				g.state = scanChunkSize
				continue
			}
			if semi := bytes.IndexByte(line, ';'); semi >= 0 {
				line = line[:semi]
			}
			size, err := strconv.ParseInt(string(bytes.TrimSpace(line)), 16, 64)
			switch {
			case err != nil || size < 0:
				g.off = true
			case size == 0:
				g.state = scanTrailers
			default:
				g.left, g.state = size, scanChunkData
			}
		}
	}
}

func (g *guardConn) buffer(b []byte) {
	if len(g.line)+len(b) > maxGuardLine {
		g.off = true
		return
	}
	g.line = append(g.line, b...)
}

// endsHead reports whether buf ends with an empty line (or is one).
func endsHead(buf []byte) bool {
	return bytes.Equal(buf, []byte("\r\n")) || bytes.Equal(buf, []byte("\n")) ||
		bytes.HasSuffix(buf, []byte("\n\r\n")) || bytes.HasSuffix(buf, []byte("\n\n"))
}

// head reads a complete request head: its verdict, and how its body is framed.
func (g *guardConn) head(h []byte) {
	lines := bytes.Split(bytes.TrimRight(h, "\r\n"), []byte("\n"))
	reqLine := bytes.Fields(bytes.TrimRight(lines[0], "\r"))
	if len(reqLine) != 3 {
		g.off = true // net/http answers 400 and closes
		return
	}
	v := headVerdict{method: string(reqLine[0]), target: string(reqLine[1])}
	var cl []string
	var te []string
	upgrade, folded := false, false
	for _, l := range lines[1:] {
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			folded = true // obs-fold: RFC 9112 lets a server refuse it
			continue
		}
		name, value, ok := bytes.Cut(bytes.TrimRight(l, "\r"), []byte(":"))
		if !ok {
			g.off = true
			return
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl = append(cl, string(value))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te = append(te, string(value))
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = true
		}
	}
	switch {
	case len(cl) > 0 && len(te) > 0:
		v.refuse = "a request may not carry both Content-Length and Transfer-Encoding"
	case folded:
		v.refuse = "header lines folded onto the next line (obs-fold) are not accepted"
	}
	g.verdicts = append(g.verdicts, v)
	switch {
	case upgrade || v.method == "CONNECT" || v.refuse != "":
		// What follows may not be HTTP; a refused request closes the connection.
		g.off = true
	case len(te) > 0:
		if len(te) != 1 || !bytes.EqualFold([]byte(te[0]), []byte("chunked")) {
			g.off = true // net/http refuses other codings and closes
			return
		}
		g.state = scanChunkSize
	case len(cl) > 0:
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil || n < 0 {
			g.off = true
			return
		}
		if n > 0 {
			g.left, g.state = n, scanBody
		}
	}
}
