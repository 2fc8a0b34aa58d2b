package router

import (
	"bytes"
	"errors"
)

// The event loop (loop_linux.go) serves the plain requests that make up almost
// all traffic itself, and hands every other connection to the fasthttp server
// before it acts on a single byte. This file holds its parsing: a strict reader
// of request heads that says "plain" only when the request is one the loop
// forwards exactly as the fasthttp path would, a reader of response heads, and
// a scanner of chunked bodies. They are pure functions of bytes, tested and
// fuzzed alone.

// span is a header field inside a buffer: name and value as offsets.
type span struct{ k0, k1, v0, v1 int32 }

func (s span) name(b []byte) []byte  { return b[s.k0:s.k1] }
func (s span) value(b []byte) []byte { return b[s.v0:s.v1] }

// reqHead is a request head the loop can forward.
type reqHead struct {
	size   int // bytes of the head, blank line included
	method []byte
	target []byte
	host   []byte
	close  bool // Connection: close
	length int  // Content-Length: the body follows the head; 0 without one
	fields []span
}

// loopRequestMax bounds a request the loop serves, head and body together: it
// must fit in a connection's read buffer. A longer body goes to the fasthttp
// path, which streams it.
const loopRequestMax = 16 << 10

// lookup returns the value of the first field named name (case-insensitive).
func (h *reqHead) lookup(b []byte, name string) []byte {
	for _, f := range h.fields {
		if asciiEqualFold(f.name(b), name) {
			return f.value(b)
		}
	}
	return nil
}

// headVerdictLoop is what parseRequestHead makes of the start of a buffer.
type headVerdictLoop int

const (
	headIncomplete headVerdictLoop = iota // the blank line has not arrived yet
	headPlain                             // a request the loop forwards itself, its body (if any) all in b
	headBody                              // as headPlain, but the body has not all arrived yet
	headOther                             // anything else: the fasthttp server takes the connection
)

// parseRequestHead reads the request head at the start of b. It says headPlain
// (or headBody, while the body is still arriving) only for an HTTP/1.1 request
// of a common method (loopMethod) in origin form with exactly one Host, no
// framing but at most one Content-Length of plain digits, a body that fits
// with its head in loopRequestMax, no Transfer-Encoding, Expect or Upgrade, a
// Connection header (if any) of keep-alive or close, CRLF line ends, and field
// names and values of plain characters. Every other head, well-formed or not,
// is headOther: the fasthttp server and the framing guard then answer it
// exactly as they always have.
func parseRequestHead(b []byte, h *reqHead) headVerdictLoop {
	h.fields = h.fields[:0]
	h.host, h.close, h.length = nil, false, 0
	// One pass over the lines: a head that cannot be plain is known as soon
	// as the line that says so has arrived.
	line, pos, state := nextLine(b, 0)
	switch state {
	case lineIncomplete:
		return incompleteHead(b)
	case lineBareLF:
		return headOther // a bare LF ends lines for lenient servers; the loop does not follow
	}
	sp := bytes.IndexByte(line, ' ')
	if sp < 0 {
		return headOther
	}
	h.method = line[:sp]
	if !loopMethod(h.method) {
		return headOther
	}
	line = line[sp+1:]
	sp = bytes.IndexByte(line, ' ')
	if sp <= 0 || string(line[sp+1:]) != "HTTP/1.1" {
		return headOther
	}
	h.target = line[:sp]
	if h.target[0] != '/' {
		return headOther
	}
	for _, c := range h.target {
		if c <= ' ' || c >= 0x7f {
			return headOther
		}
	}
	hosts, lengths := 0, 0
	for {
		off := pos
		line, pos, state = nextLine(b, pos)
		switch state {
		case lineIncomplete:
			return incompleteHead(b)
		case lineBareLF:
			return headOther
		}
		if len(line) == 0 {
			break // the blank line that ends the head
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 || !tokenName(line[:colon]) {
			return headOther
		}
		v0, v1 := trimOWS(line, colon+1)
		name, value := line[:colon], line[v0:v1]
		if !plainValue(value) {
			return headOther
		}
		switch {
		case asciiEqualFold(name, "Host"):
			hosts++
			h.host = value
		case asciiEqualFold(name, "Content-Length"):
			// One field of plain digits; anything else is for the framing guard.
			n, ok := plainLength(value)
			if lengths++; !ok || lengths > 1 || n > loopRequestMax {
				return headOther
			}
			h.length = int(n)
		case asciiEqualFold(name, "Transfer-Encoding"), asciiEqualFold(name, "Expect"), asciiEqualFold(name, "Upgrade"):
			return headOther
		case asciiEqualFold(name, "Connection"):
			for list := value; list != nil; {
				var tok []byte
				tok, list = nextListItem(list)
				switch {
				case asciiEqualFold(tok, "close"):
					h.close = true
				case asciiEqualFold(tok, "keep-alive"), len(tok) == 0:
				default:
					return headOther
				}
			}
		}
		h.fields = append(h.fields, span{int32(off), int32(off + colon), int32(off + v0), int32(off + v1)})
	}
	h.size = pos
	if h.size > maxHeaderBytes || hosts != 1 || len(h.host) == 0 || h.size+h.length > loopRequestMax {
		return headOther
	}
	if len(b) < h.size+h.length {
		return headBody
	}
	return headPlain
}

// incompleteHead is the verdict on a head whose blank line has not arrived:
// wait for it, unless it could no longer fit.
func incompleteHead(b []byte) headVerdictLoop {
	if len(b) >= maxHeaderBytes {
		return headOther
	}
	return headIncomplete
}

// What nextLine found.
const (
	lineComplete   = iota
	lineIncomplete // no LF yet
	lineBareLF     // the line ends in an LF without a CR
)

// nextLine returns the line of b that starts at pos, without its CRLF, and
// where the next one starts.
func nextLine(b []byte, pos int) (line []byte, next, state int) {
	i := bytes.IndexByte(b[pos:], '\n')
	if i < 0 {
		return nil, pos, lineIncomplete
	}
	end := pos + i
	if end == pos || b[end-1] != '\r' {
		return nil, end + 1, lineBareLF
	}
	return b[pos : end-1], end + 1, lineComplete
}

// trimOWS returns the bounds of a field's value: what follows from in l,
// without the spaces and tabs around it.
func trimOWS(l []byte, from int) (v0, v1 int) {
	v0, v1 = from, len(l)
	for v0 < v1 && (l[v0] == ' ' || l[v0] == '\t') {
		v0++
	}
	for v1 > v0 && (l[v1-1] == ' ' || l[v1-1] == '\t') {
		v1--
	}
	return v0, v1
}

// nextListItem splits the first item, without surrounding white space, off
// a comma-separated field value; rest is nil after the last one.
func nextListItem(list []byte) (item, rest []byte) {
	if i := bytes.IndexByte(list, ','); i >= 0 {
		item, rest = list[:i], list[i+1:]
	} else {
		item = list
	}
	return bytes.TrimSpace(item), rest
}

// loopMethod reports whether the loop serves requests of method m: the methods
// of ordinary web and API traffic. CONNECT, TRACE and the rest go to the
// fasthttp path.
func loopMethod(m []byte) bool {
	switch string(m) {
	case "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS":
		return true
	}
	return false
}

// needsLength reports whether a request of method m is sent upstream with a
// Content-Length even when it has no body, as the fasthttp path does.
func needsLength(m []byte) bool {
	switch string(m) {
	case "POST", "PUT", "PATCH":
		return true
	}
	return false
}

var crlfcrlf = []byte("\r\n\r\n")

// plainValue reports whether v is a field value (or reason phrase) of visible
// characters, spaces and tabs: no CR, LF, NUL or other control character.
func plainValue(v []byte) bool {
	for _, c := range v {
		if ctlChars[c] {
			return false
		}
	}
	return true
}

// isCtl reports whether c is a control character other than a tab.
func isCtl(c byte) bool { return ctlChars[c] }

func isTokenChar(c byte) bool { return tokenChars[c] }

// tokenName reports whether a field name is a non-empty token.
func tokenName(name []byte) bool {
	for _, c := range name {
		if !tokenChars[c] {
			return false
		}
	}
	return len(name) > 0
}

// tokenChars and ctlChars classify bytes for the parsers, by table rather
// than by comparisons: they run over every byte of every head.
var tokenChars, ctlChars = func() (token, ctl [256]bool) {
	for c := range 256 {
		b := byte(c)
		switch {
		case b >= 'a' && b <= 'z', b >= 'A' && b <= 'Z', b >= '0' && b <= '9':
			token[c] = true
		}
		switch b {
		case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
			token[c] = true
		}
		ctl[c] = b < ' ' && b != '\t' || b == 0x7f
	}
	return token, ctl
}()

func asciiEqualFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		x, y := b[i], s[i]
		if x == y {
			continue
		}
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// Body framing of a response, as the loop forwards it.
const (
	bodyNone     = iota // 1xx, 204, 304 or an answer to HEAD
	bodyLength          // Content-Length bytes
	bodyChunked         // chunked, passed on as it is
	bodyUntilEOF        // until the upstream closes; re-chunked for the client
)

// respHead is an upstream response head.
type respHead struct {
	size    int
	code    int
	reason  []byte
	mode    int
	length  int64
	keep    bool // the upstream connection may carry another request
	sse     bool
	hasDate bool
	fields  []span // what is passed on to the client
}

var errBadResponse = errors.New("malformed response head")

// parseResponseHead reads the response head at the start of b; ok is false while
// it is incomplete. head says the request was a HEAD. Hop-by-hop fields, those
// the Connection field names, and the request ID field (the router sets its
// own) are left out of fields.
func parseResponseHead(b []byte, head bool, reqIDName string, h *respHead) (ok bool, err error) {
	h.fields = h.fields[:0]
	line, pos, state := nextLine(b, 0)
	switch state {
	case lineIncomplete:
		return false, nil
	case lineBareLF:
		return false, errBadResponse
	}
	var proto11 bool
	switch {
	case bytes.HasPrefix(line, []byte("HTTP/1.1 ")):
		proto11 = true
	case bytes.HasPrefix(line, []byte("HTTP/1.0 ")):
	default:
		return false, errBadResponse
	}
	line = line[9:]
	if len(line) < 3 || (len(line) > 3 && line[3] != ' ') {
		return false, errBadResponse
	}
	code := 0
	for _, c := range line[:3] {
		if c < '0' || c > '9' {
			return false, errBadResponse
		}
		code = code*10 + int(c-'0')
	}
	if code < 100 {
		return false, errBadResponse
	}
	h.code = code
	h.reason = nil
	if len(line) > 4 {
		h.reason = line[4:]
	}
	if !plainValue(h.reason) {
		return false, errBadResponse
	}
	h.length, h.sse, h.hasDate = -1, false, false
	chunked, closeTok, keepTok := false, false, false
	var connList [][]byte
	for {
		off := pos
		line, pos, state = nextLine(b, pos)
		switch state {
		case lineIncomplete:
			return false, nil
		case lineBareLF:
			return false, errBadResponse
		}
		if len(line) == 0 {
			break // the blank line that ends the head
		}
		colon := bytes.IndexByte(line, ':')
		// What is passed on must be what any client reads the same way.
		if colon <= 0 || !tokenName(line[:colon]) {
			return false, errBadResponse
		}
		v0, v1 := trimOWS(line, colon+1)
		name, value := line[:colon], line[v0:v1]
		if !plainValue(value) {
			return false, errBadResponse
		}
		keepField := true
		switch {
		case asciiEqualFold(name, "Content-Length"):
			n, ok := plainLength(value)
			if !ok || (h.length >= 0 && n != h.length) {
				return false, errBadResponse
			}
			h.length = n
			keepField = false
		case asciiEqualFold(name, "Transfer-Encoding"):
			if !asciiEqualFold(bytes.TrimSpace(value), "chunked") {
				return false, errBadResponse
			}
			chunked = true
			keepField = false
		case asciiEqualFold(name, "Connection"):
			for list := value; list != nil; {
				var tok []byte
				tok, list = nextListItem(list)
				switch {
				case asciiEqualFold(tok, "close"):
					closeTok = true
				case asciiEqualFold(tok, "keep-alive"):
					keepTok = true
				case len(tok) > 0:
					connList = append(connList, tok)
				}
			}
			keepField = false
		case asciiEqualFold(name, "Keep-Alive"), asciiEqualFold(name, "Proxy-Connection"),
			asciiEqualFold(name, "Te"), asciiEqualFold(name, "Upgrade"), asciiEqualFold(name, reqIDName):
			keepField = false
		case asciiEqualFold(name, "Content-Type"):
			h.sse = bytes.HasPrefix(value, []byte("text/event-stream"))
		case asciiEqualFold(name, "Date"):
			h.hasDate = true
		}
		if keepField {
			h.fields = append(h.fields, span{int32(off), int32(off + colon), int32(off + v0), int32(off + v1)})
		}
	}
	h.size = pos
	if len(connList) > 0 {
		kept := h.fields[:0]
		for _, f := range h.fields {
			if !listHas(connList, f.name(b)) {
				kept = append(kept, f)
			}
		}
		h.fields = kept
	}
	h.keep = !closeTok && (proto11 || keepTok)
	switch {
	case code < 200 || code == 204 || code == 304 || head:
		h.mode = bodyNone
	case chunked:
		h.mode = bodyChunked
		h.length = -1
	case h.length >= 0:
		h.mode = bodyLength
	default:
		h.mode = bodyUntilEOF
		h.keep = false
	}
	return true, nil
}

// plainLength reads a Content-Length of 1 to 18 digits, no sign.
func plainLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

func listHas(list [][]byte, name []byte) bool {
	for _, tok := range list {
		if bytes.EqualFold(tok, name) {
			return true
		}
	}
	return false
}

// chunkScanner follows the framing of a chunked body passed on unchanged, to
// find where it ends.
type chunkScanner struct {
	state  int
	left   int64
	digits int
	line   int // length of the trailer line being read
}

const (
	chSize = iota
	chExt
	chSizeLF
	chData
	chDataCR
	chDataLF
	chTrailerStart
	chTrailer
	chTrailerLF
	chEndLF
	chDone
)

var errBadChunk = errors.New("malformed chunked body")

// The states that expect one fixed byte of framing: which byte, and the state after it.
var (
	fixedByte = [...]byte{chDataCR: '\r', chDataLF: '\n', chTrailerLF: '\n', chEndLF: '\n'}
	fixedNext = [...]int{chDataCR: chDataLF, chDataLF: chSize, chTrailerLF: chTrailerStart, chEndLF: chDone}
)

// scan consumes p, returning how many bytes belong to the body (all of p unless
// the body ends inside it) and whether it has ended.
func (s *chunkScanner) scan(p []byte) (int, bool, error) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch s.state {
		case chSize:
			switch {
			case c == '\r' && s.digits > 0:
				s.state = chSizeLF
			case c == ';' && s.digits > 0:
				s.state = chExt
			default:
				d := unhex(c)
				if d < 0 || s.digits >= 15 {
					return i, false, errBadChunk
				}
				s.left = s.left<<4 | int64(d)
				s.digits++
			}
		case chExt:
			if c == '\r' {
				s.state = chSizeLF
			} else if c == '\n' {
				return i, false, errBadChunk
			}
		case chSizeLF:
			if c != '\n' {
				return i, false, errBadChunk
			}
			s.digits = 0
			if s.left == 0 {
				s.state = chTrailerStart
			} else {
				s.state = chData
			}
		case chData:
			k := int64(len(p) - i)
			if k > s.left {
				k = s.left
			}
			s.left -= k
			i += int(k) - 1
			if s.left == 0 {
				s.state = chDataCR
			}
		case chDataCR, chDataLF, chTrailerLF, chEndLF:
			if c != fixedByte[s.state] {
				return i, false, errBadChunk
			}
			if s.state = fixedNext[s.state]; s.state == chDone {
				return i + 1, true, nil
			}
		case chTrailerStart:
			switch {
			case c == '\r':
				s.state = chEndLF
			case isCtl(c):
				return i, false, errBadChunk // a bare LF would end the body early for some clients
			default:
				s.state, s.line = chTrailer, 1
			}
		case chTrailer:
			s.line++
			switch {
			case c == '\r':
				s.state = chTrailerLF
			case isCtl(c), s.line > maxHeaderBytes:
				return i, false, errBadChunk
			}
		}
	}
	return len(p), false, nil
}

func unhex(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	case c >= 'A' && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// cookieValue finds a cookie in the value of a Cookie field.
func cookieValue(field []byte, name string) []byte {
	for len(field) > 0 {
		var pair []byte
		if i := bytes.IndexByte(field, ';'); i >= 0 {
			pair, field = field[:i], field[i+1:]
		} else {
			pair, field = field, nil
		}
		pair = bytes.TrimSpace(pair)
		if k, v, ok := bytes.Cut(pair, []byte("=")); ok && string(k) == name {
			return bytes.Trim(v, `"`)
		}
	}
	return nil
}
