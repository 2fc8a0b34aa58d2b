package router

import (
	"bytes"
	"net"
	"strconv"
	"sync"
)

// The framing of a request (Content-Length, Transfer-Encoding) is where request
// smuggling lives, and HTTP servers differ in what they tolerate: some drop a
// Content-Length that comes with Transfer-Encoding, as RFC 9112 allows. The
// router refuses every ambiguous framing outright, whatever the server library
// would do. A guard follows the framing of the raw bytes of each connection and
// records, for every request head, whether it must be refused. The handler
// checks the verdict of its request; the method and target must match. A guard
// that lost track of the framing fails closed: every later request of the
// connection is refused, since the server may then be reading a request the
// guard never saw. Scanning stops only when a refusal closes the connection or
// the upstream really switched protocols (a 101 for an upgrade the client asked
// for); an upgrade the upstream turned down leaves the connection HTTP, and the
// guard on.

// guardListener wraps accepted connections in a guardConn.
type guardListener struct{ net.Listener }

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &guardConn{Conn: c}, nil
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
	code           int    // the status of the refusal
}

type guardConn struct {
	net.Conn
	mu       sync.Mutex
	off      bool // scanning has stopped
	lost     bool // stopped because the framing could not be followed: refuse what follows
	state    scanState
	line     []byte // the head, chunk-size line or trailer being read
	left     int64  // bytes left in a body or chunk
	verdicts []headVerdict
	ip       string // the client's address as text, set by the handler once
}

// maxGuardLine bounds what the guard buffers; past it the server refuses the request anyway.
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

// lostVerdict refuses a request whose framing the guard could not follow.
var lostVerdict = headVerdict{code: 400, refuse: "the framing of this connection could not be followed; open a new connection"}

// pop returns the verdict of the request the handler is serving. A request the
// guard has no verdict for, or another verdict than its own, is refused.
func (g *guardConn) pop(method, target []byte) headVerdict {
	g.mu.Lock()
	defer g.mu.Unlock()
	// Verdicts already recorded stay good after scanning stops.
	if len(g.verdicts) == 0 {
		g.lose()
		return lostVerdict
	}
	v := g.verdicts[0]
	g.verdicts = g.verdicts[1:]
	if v.method != string(method) || v.target != string(target) {
		g.lose()
		return lostVerdict
	}
	return v
}

// lose stops scanning for good: what follows cannot be told apart.
func (g *guardConn) lose() {
	g.off, g.lost, g.verdicts = true, true, nil
}

// switched stops scanning when the upstream has switched protocols: what the
// client sends from now on is not HTTP, and no request follows.
func (g *guardConn) switched() {
	g.mu.Lock()
	g.off = true
	g.mu.Unlock()
}

// last returns the verdict of the newest head, for a request the server could
// not parse (and so never handed to the handler).
func (g *guardConn) last() (headVerdict, bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.verdicts) == 0 {
		return headVerdict{}, false
	}
	return g.verdicts[len(g.verdicts)-1], true
}

func (g *guardConn) scan(b []byte) {
	for len(b) > 0 && !g.off {
		switch g.state {
		case scanHead, scanTrailers:
			var complete bool
			if b, complete = g.takeLine(b); !complete || g.off {
				return
			}
			if !endsHead(g.line) {
				continue
			}
			if g.state == scanHead && (len(g.line) == 1 || len(g.line) == 2 && g.line[0] == '\r') {
				// Empty lines before a request line are skipped, as RFC 9112
				// allows and the server does (a CRLF after a body, say).
				g.line = g.line[:0]
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
			var complete bool
			if b, complete = g.takeLine(b); !complete || g.off {
				return
			}
			line := bytes.TrimRight(g.line, "\r\n")
			g.line = g.line[:0]
			if g.state == scanChunkEnd {
				if len(line) != 0 {
					g.lose()
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
				g.lose()
			case size == 0:
				g.state = scanTrailers
			default:
				g.left, g.state = size, scanChunkData
			}
		}
	}
}

// takeLine adds bytes up to and including the next newline to g.line and
// returns the rest; complete is false when b held no newline (all of it was kept).
func (g *guardConn) takeLine(b []byte) (rest []byte, complete bool) {
	i := bytes.IndexByte(b, '\n')
	if i < 0 {
		g.buffer(b)
		return nil, false
	}
	g.buffer(b[:i+1])
	return b[i+1:], true
}

func (g *guardConn) buffer(b []byte) {
	if len(g.line)+len(b) > maxGuardLine {
		g.lose()
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
	h = bytes.TrimRight(h, "\r\n")
	first, rest, _ := bytes.Cut(h, []byte("\n"))
	method, target, ok := requestLine(bytes.TrimRight(first, "\r"))
	if !ok {
		g.lose() // the server answers 400 and closes, or reads what the guard could not
		return
	}
	v := headVerdict{method: method, target: target}
	var cl []string
	var te []string
	hosts := 0
	folded, spaced := false, false
	for len(rest) > 0 {
		var l []byte
		l, rest, _ = bytes.Cut(rest, []byte("\n"))
		if len(l) > 0 && (l[0] == ' ' || l[0] == '\t') {
			folded = true // obs-fold: RFC 9112 lets a server refuse it
			continue
		}
		name, value, ok := bytes.Cut(bytes.TrimRight(l, "\r"), []byte(":"))
		if !ok {
			g.lose()
			return
		}
		if bytes.ContainsAny(name, " \t") {
			spaced = true // RFC 9112: whitespace before the colon must be refused
		}
		switch {
		case bytes.EqualFold(name, []byte("Content-Length")):
			cl = append(cl, string(bytes.TrimSpace(value)))
		case bytes.EqualFold(name, []byte("Transfer-Encoding")):
			te = append(te, string(bytes.TrimSpace(value)))
		case bytes.EqualFold(name, []byte("Host")):
			hosts++
		}
	}
	refuse := func(code int, why string) {
		if v.refuse == "" {
			v.code, v.refuse = code, why
		}
	}
	switch {
	case len(cl) > 0 && len(te) > 0:
		refuse(400, "a request may not carry both Content-Length and Transfer-Encoding")
	case folded:
		refuse(400, "header lines folded onto the next line (obs-fold) are not accepted")
	case spaced:
		refuse(400, "a header name may not end in whitespace")
	case len(te) > 1 || (len(te) == 1 && !bytes.EqualFold([]byte(te[0]), []byte("chunked"))):
		refuse(501, "the only transfer coding accepted is a single chunked")
	case hosts > 1:
		// RFC 9112: a request with more than one Host field must be refused;
		// which one a server or an app would believe is anyone's guess.
		refuse(400, "a request may carry only one Host header")
	}
	for _, c := range cl {
		if c != cl[0] || !allDigits(c) {
			refuse(400, "Content-Length must be one number")
		}
	}
	g.verdicts = append(g.verdicts, v)
	switch {
	case v.refuse != "":
		// A refused request closes the connection: nothing more is read.
		g.off = true
	case len(te) > 0:
		g.state = scanChunkSize
	case len(cl) > 0:
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil || n < 0 {
			g.lose()
			return
		}
		if n > 0 {
			g.left, g.state = n, scanBody
		}
	}
}

func allDigits(s string) bool {
	if s == "" || len(s) > 18 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// requestLine splits "METHOD TARGET HTTP/x.y".
func requestLine(l []byte) (method, target string, ok bool) {
	m, rest, ok1 := bytes.Cut(l, []byte(" "))
	t, proto, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(m) == 0 || len(t) == 0 || !bytes.HasPrefix(proto, []byte("HTTP/")) {
		return "", "", false
	}
	return string(m), string(t), true
}
