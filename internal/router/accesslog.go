package router

import (
	"context"
	"io"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// accessLog collects the access lines of the apps that ask for them and
// writes them out in batches from a goroutine of its own: a request only
// appends its line to a buffer, so a slow disk never holds up the event loops.
type accessLog struct {
	w       io.Writer
	mu      sync.Mutex
	buf     []byte
	dropped uint64 // lines dropped while the buffer was full
	wake    chan struct{}
	flushMu sync.Mutex // one flush at a time, in order
	spare   []byte
}

// Tuning of the access log's buffer.
const (
	accessFlushEvery = 200 * time.Millisecond
	accessFlushAt    = 64 << 10 // a buffer this full is written without waiting for the tick
	accessMaxBuf     = 8 << 20  // past this, lines are dropped (and counted) until the writer catches up
)

func newAccessLog(w io.Writer) *accessLog {
	return &accessLog{w: w, wake: make(chan struct{}, 1)}
}

// add queues one line.
func (l *accessLog) add(line []byte) {
	l.mu.Lock()
	if len(l.buf)+len(line) > accessMaxBuf {
		l.dropped++
		l.mu.Unlock()
		return
	}
	l.buf = append(l.buf, line...)
	full := len(l.buf) >= accessFlushAt
	l.mu.Unlock()
	if full {
		select {
		case l.wake <- struct{}{}:
		default:
		}
	}
}

// run writes the buffer out until ctx ends, then once more.
func (l *accessLog) run(ctx context.Context) {
	tick := time.NewTicker(accessFlushEvery)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			l.flush()
			return
		case <-tick.C:
		case <-l.wake:
		}
		l.flush()
	}
}

// flush writes what is buffered.
func (l *accessLog) flush() {
	l.flushMu.Lock()
	defer l.flushMu.Unlock()
	l.mu.Lock()
	b, dropped := l.buf, l.dropped
	l.buf, l.dropped = l.spare[:0], 0
	l.mu.Unlock()
	if dropped > 0 {
		b = append(b, `{"time":"`...)
		b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
		b = append(b, `","level":"WARN","msg":"access log lines dropped: the log could not keep up","dropped":`...)
		b = strconv.AppendUint(b, dropped, 10)
		b = append(b, "}\n"...)
	}
	if len(b) > 0 {
		l.w.Write(b)
	}
	if cap(b) <= accessFlushAt*4 {
		l.spare = b[:0]
	} else {
		l.spare = nil
	}
}

// appendAccessRequest writes what an access line says of the request, written as a
// fragment of JSON when the request starts: the bytes it is taken from do
// not outlive that moment on the event loop.
func appendAccessRequest(dst []byte, method, host, target []byte, client, proto string, tls, test bool) []byte {
	path := target
	for i, c := range target {
		if c == '?' {
			// The query is left out: it often carries tokens and personal data.
			path = target[:i]
			break
		}
	}
	dst = append(dst, `"method":`...)
	dst = appendJSONString(dst, method)
	dst = append(dst, `,"host":`...)
	dst = appendJSONString(dst, host)
	dst = append(dst, `,"path":`...)
	dst = appendJSONString(dst, path)
	dst = append(dst, `,"client":`...)
	dst = appendJSONString(dst, client)
	dst = append(dst, `,"proto":"`...)
	dst = append(dst, proto...)
	dst = append(dst, `","scheme":"`...)
	if tls {
		dst = append(dst, "https"...)
	} else {
		dst = append(dst, "http"...)
	}
	dst = append(dst, `","listener":"`...)
	if test {
		dst = append(dst, "test"...)
	} else {
		dst = append(dst, "production"...)
	}
	return append(dst, '"')
}

// accessEnd is what an access line says of how the request ended.
type accessEnd struct {
	app, fleet string
	target     *target // nil when no target answered
	status     int
	in, out    int64
	dur        time.Duration
	reqID      []byte
	timeout    bool // the target did not answer within the app's timeout
}

// appendAccessLine writes a whole access line: the time, the app, the
// request's fragment req, and how it ended.
func appendAccessLine(dst []byte, now time.Time, req []byte, e *accessEnd) []byte {
	dst = append(dst, `{"time":"`...)
	dst = now.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, `","level":"INFO","msg":"access","app":`...)
	dst = appendJSONString(dst, e.app)
	dst = append(dst, `,"fleet":`...)
	dst = appendJSONString(dst, e.fleet)
	dst = append(dst, `,"target":`...)
	if e.target != nil {
		dst = appendJSONString(dst, e.target.addr)
	} else {
		dst = append(dst, `""`...)
	}
	dst = append(dst, ',')
	dst = append(dst, req...)
	dst = append(dst, `,"status":`...)
	dst = strconv.AppendInt(dst, int64(e.status), 10)
	dst = append(dst, `,"bytes_in":`...)
	dst = strconv.AppendInt(dst, e.in, 10)
	dst = append(dst, `,"bytes_out":`...)
	dst = strconv.AppendInt(dst, e.out, 10)
	dst = append(dst, `,"duration_ms":`...)
	dst = strconv.AppendFloat(dst, float64(e.dur)/float64(time.Millisecond), 'f', 3, 64)
	dst = append(dst, `,"request_id":`...)
	dst = appendJSONString(dst, e.reqID)
	if e.timeout {
		dst = append(dst, `,"timeout":true`...)
	}
	return append(dst, "}\n"...)
}

// appendJSONString writes s as a JSON string: quotes, backslashes and
// control characters escaped, bytes that are not UTF-8 replaced.
func appendJSONString[S string | []byte](dst []byte, s S) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '"')
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				dst = append(dst, '\\', c)
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(string(s[i:min(i+utf8.UTFMax, len(s))]))
		if r == utf8.RuneError && size == 1 {
			dst = append(dst, `\ufffd`...)
		} else {
			dst = append(dst, s[i:i+size]...)
		}
		i += size
	}
	return append(dst, '"')
}
