package router

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// The tests of wire.go: the request head reader of the event loop, the
// response head reader, the chunked body scanner and the small helpers.

// wireReqIDName is the request-ID field name the response tests use.
const wireReqIDName = "X-Request-Id"

// wirePad returns a head of exactly size bytes: a plain GET whose X-Pad field
// is filled up to the length asked for.
func wirePad(t testing.TB, size int) string {
	t.Helper()
	const pre = "GET / HTTP/1.1\r\nHost: a\r\nX-Pad: "
	const post = "\r\n\r\n"
	n := size - len(pre) - len(post)
	if n < 1 {
		t.Fatalf("wirePad: %d bytes is too small", size)
	}
	return pre + strings.Repeat("p", n) + post
}

// wireFields renders spans as "name: value" strings.
func wireFields(b []byte, fields []span) []string {
	out := []string{}
	for _, f := range fields {
		out = append(out, string(f.name(b))+": "+string(f.value(b)))
	}
	return out
}

// wireShort quotes s, cut short if it is long.
func wireShort(s string) string {
	if len(s) > 80 {
		return strconv.Quote(s[:60]) + "..." + strconv.Quote(s[len(s)-12:])
	}
	return strconv.Quote(s)
}

func TestParseRequestHeadPlain(t *testing.T) {
	cases := []struct {
		name    string
		head    string
		method  string
		target  string
		host    string
		close   bool
		fields  []string
		lookups map[string]string // name as asked -> value; "" means absent
	}{
		{
			name:   "minimal GET",
			head:   "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
			method: "GET", target: "/", host: "example.com",
			fields: []string{"Host: example.com"},
		},
		{
			name:   "HEAD with query",
			head:   "HEAD /a/b?c=d&e HTTP/1.1\r\nHost: example.com:8080\r\n\r\n",
			method: "HEAD", target: "/a/b?c=d&e", host: "example.com:8080",
			fields: []string{"Host: example.com:8080"},
		},
		{
			name:   "Connection close",
			head:   "GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n",
			method: "GET", target: "/x", host: "a", close: true,
			fields: []string{"Host: a", "Connection: close"},
		},
		{
			name:   "Connection close in mixed case among keep-alive and empty tokens",
			head:   "GET /x HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, , CLOSE\r\n\r\n",
			method: "GET", target: "/x", host: "a", close: true,
			fields: []string{"Host: a", "Connection: keep-alive, , CLOSE"},
		},
		{
			name:   "Connection keep-alive",
			head:   "GET /x HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive\r\n\r\n",
			method: "GET", target: "/x", host: "a",
			fields: []string{"Host: a", "Connection: Keep-Alive"},
		},
		{
			name:   "empty Connection",
			head:   "GET /x HTTP/1.1\r\nHost: a\r\nConnection:\r\n\r\n",
			method: "GET", target: "/x", host: "a",
			fields: []string{"Host: a", "Connection: "},
		},
		{
			name: "several fields, values trimmed, lookup ignores case",
			head: "GET /p HTTP/1.1\r\nhost:\t example.org \t\r\nAccept: */*\r\nCookie: a=1; bg=blue\r\n" +
				"X-Empty:\r\nUser-Agent: curl/8 (x86_64)\r\nX-Obs: caf\xc3\xa9\r\nX-Dup: 1\r\nx-dup: 2\r\n\r\n",
			method: "GET", target: "/p", host: "example.org",
			fields: []string{"host: example.org", "Accept: */*", "Cookie: a=1; bg=blue", "X-Empty: ",
				"User-Agent: curl/8 (x86_64)", "X-Obs: caf\xc3\xa9", "X-Dup: 1", "x-dup: 2"},
			lookups: map[string]string{
				"HOST": "example.org", "accept": "*/*", "cookie": "a=1; bg=blue",
				"x-dup": "1", "X-Missing": "", "user-agent": "curl/8 (x86_64)",
			},
		},
		{
			name:   "Host not first, tab inside a value",
			head:   "GET /%41?%zz HTTP/1.1\r\nX-A: a\tb\r\nHost: h\r\n\r\n",
			method: "GET", target: "/%41?%zz", host: "h",
			fields: []string{"X-A: a\tb", "Host: h"},
		},
		{
			name:   "token characters in names",
			head:   "GET / HTTP/1.1\r\nHost: h\r\n!#$%&'*+-.^_`|~09az: v\r\n\r\n",
			method: "GET", target: "/", host: "h",
			fields: []string{"Host: h", "!#$%&'*+-.^_`|~09az: v"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, tail := range []string{"", "GET /next HTTP/1.1\r\nHost: a\r\n\r\n", "POST /x HTTP/1.1\r\nCont"} {
				b := []byte(tc.head + tail)
				var h reqHead
				if v := parseRequestHead(b, &h); v != headPlain {
					t.Fatalf("tail %q: verdict %d, want headPlain", tail, v)
				}
				if h.size != len(tc.head) {
					t.Errorf("tail %q: size %d, want %d (pipelined bytes must not count)", tail, h.size, len(tc.head))
				}
				if string(h.method) != tc.method || string(h.target) != tc.target || string(h.host) != tc.host {
					t.Errorf("got %q %q host %q, want %q %q host %q", h.method, h.target, h.host, tc.method, tc.target, tc.host)
				}
				if h.close != tc.close {
					t.Errorf("close = %v, want %v", h.close, tc.close)
				}
				if got := wireFields(b, h.fields); !slices.Equal(got, tc.fields) {
					t.Errorf("fields %q, want %q", got, tc.fields)
				}
				for name, want := range tc.lookups {
					if got := h.lookup(b, name); string(got) != want {
						t.Errorf("lookup(%q) = %q, want %q", name, got, want)
					}
				}
			}
		})
	}
}

func TestParseRequestHeadLookupOfAbsentFieldIsNil(t *testing.T) {
	b := []byte("GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\n\r\n")
	var h reqHead
	if v := parseRequestHead(b, &h); v != headPlain {
		t.Fatalf("verdict %d", v)
	}
	if got := h.lookup(b, "X-Absent"); got != nil {
		t.Errorf("absent field: %q, want nil", got)
	}
	if got := h.lookup(b, "x-empty"); got == nil || len(got) != 0 {
		t.Errorf("empty field: %q (nil %v), want empty and non-nil", got, got == nil)
	}
}

func TestParseRequestHeadResetsStateBetweenCalls(t *testing.T) {
	var h reqHead
	first := []byte("GET /1 HTTP/1.1\r\nHost: one\r\nConnection: close\r\nX-A: 1\r\n\r\n")
	if v := parseRequestHead(first, &h); v != headPlain || !h.close {
		t.Fatalf("first: verdict %d close %v", v, h.close)
	}
	second := []byte("GET /2 HTTP/1.1\r\nHost: two\r\n\r\n")
	if v := parseRequestHead(second, &h); v != headPlain {
		t.Fatalf("second: verdict %d", v)
	}
	if h.close || string(h.host) != "two" || len(h.fields) != 1 || h.size != len(second) {
		t.Errorf("state leaked from the first head: close %v host %q fields %d size %d", h.close, h.host, len(h.fields), h.size)
	}
	// A refused head after a plain one must not keep the old Host either.
	var h2 reqHead
	parseRequestHead(first, &h2)
	if v := parseRequestHead([]byte("GET / HTTP/1.1\r\nX: 1\r\n\r\n"), &h2); v != headOther {
		t.Errorf("head without Host: verdict %d, want headOther", v)
	}
}

func TestParseRequestHeadIncomplete(t *testing.T) {
	cases := []string{
		"",
		"G",
		"GET / HTTP/1.1",
		"GET / HTTP/1.1\r",
		"GET / HTTP/1.1\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\r",
		"POST / HTTP/1.1\r\nHost: a\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n",
	}
	for _, in := range cases {
		var h reqHead
		if v := parseRequestHead([]byte(in), &h); v != headIncomplete {
			t.Errorf("%q: verdict %d, want headIncomplete", in, v)
		}
	}
}

func TestParseRequestHeadSplitAtEveryByte(t *testing.T) {
	heads := []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /x?y HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\nAccept: */*\r\n\r\n",
		"GET /long/path HTTP/1.1\r\nUser-Agent: test\r\nHost: h\r\nCookie: a=b\r\n\r\n",
	}
	for _, head := range heads {
		for _, tail := range []string{"", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"} {
			b := []byte(head + tail)
			for i := 0; i < len(head); i++ {
				var h reqHead
				if v := parseRequestHead(b[:i], &h); v != headIncomplete {
					t.Fatalf("%q cut at %d: verdict %d, want headIncomplete", head, i, v)
				}
			}
			for i := len(head); i <= len(b); i++ {
				var h reqHead
				if v := parseRequestHead(b[:i], &h); v != headPlain || h.size != len(head) {
					t.Fatalf("%q cut at %d: verdict %d size %d, want headPlain size %d", head, i, v, h.size, len(head))
				}
			}
		}
	}
}

func TestParseRequestHeadRefusals(t *testing.T) {
	big := wirePad(t, maxHeaderBytes+1)
	cases := []struct{ name, head string }{
		{"CONNECT", "CONNECT a:443 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"TRACE", "TRACE / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"another method", "PROPFIND / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"lower-case get", "get / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"lower-case post", "post / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx"},
		{"OPTIONS asterisk", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"HTTP/1.0", "GET / HTTP/1.0\r\nHost: a\r\n\r\n"},
		{"HTTP/2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n"},
		{"lower-case version", "GET / http/1.1\r\nHost: a\r\n\r\n"},
		{"no version", "GET /\r\nHost: a\r\n\r\n"},
		{"no target", "GET\r\nHost: a\r\n\r\n"},
		{"two spaces after method", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"space after version", "GET / HTTP/1.1 \r\nHost: a\r\n\r\n"},
		{"space inside target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"absolute-form target", "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"authority-form target", "GET a:80 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"control character in target", "GET /a\x01 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"DEL in target", "GET /a\x7f HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"non-ASCII target", "GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"bare CR in target", "GET /a\rb HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"missing Host", "GET / HTTP/1.1\r\nAccept: */*\r\n\r\n"},
		{"no fields at all", "GET / HTTP/1.1\r\n\r\n"},
		{"two Host headers", "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"},
		{"two Host headers in different case", "GET / HTTP/1.1\r\nHost: a\r\nhOST: b\r\n\r\n"},
		{"empty Host", "GET / HTTP/1.1\r\nHost:\r\n\r\n"},
		{"Host of blanks", "GET / HTTP/1.1\r\nHost: \t \r\n\r\n"},
		{"two Content-Length fields", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello"},
		{"two Content-Length fields in different case", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\ncontent-length: 6\r\n\r\nhello!"},
		{"Content-Length list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\nhello"},
		{"signed Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello"},
		{"negative Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n"},
		{"hex Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello"},
		{"empty Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n"},
		{"Content-Length of 19 digits", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0000000000000000005\r\n\r\nhello"},
		{"body beyond the loop's buffer", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(loopRequestMax) + "\r\n\r\n"},
		{"huge Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 999999999999999999\r\n\r\n"},
		{"Transfer-Encoding", "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"},
		{"Content-Length and Transfer-Encoding", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\nhello"},
		{"Transfer-Encoding and Content-Length", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\nhello"},
		{"Expect with a body", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n"},
		{"Content-Length with whitespace before the colon", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello"},
		{"Content-Length folded", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n 5\r\n\r\nhello"},
		{"Expect", "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n"},
		{"Upgrade", "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n"},
		{"Connection: upgrade", "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n"},
		{"Connection naming another field", "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Foo\r\n\r\n"},
		{"obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n 2\r\n\r\n"},
		{"obs-fold with tab", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r\n\t2\r\n\r\n"},
		{"first field line starts with space", "GET / HTTP/1.1\r\n Host: a\r\n\r\n"},
		{"whitespace before colon", "GET / HTTP/1.1\r\nHost : a\r\n\r\n"},
		{"tab before colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\t: 1\r\n\r\n"},
		{"empty field name", "GET / HTTP/1.1\r\nHost: a\r\n: 1\r\n\r\n"},
		{"line without colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n"},
		{"non-token name", "GET / HTTP/1.1\r\nHost: a\r\nX(A): 1\r\n\r\n"},
		{"non-ASCII name", "GET / HTTP/1.1\r\nHost: a\r\nX-\xc3\xa9: 1\r\n\r\n"},
		{"bare LF ends the request line", "GET / HTTP/1.1\nHost: a\n\n"},
		{"bare LF ends the request line, head incomplete", "GET / HTTP/1.1\nHost: a"},
		{"bare LF as the first byte", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		{"bare LF inside the head", "GET / HTTP/1.1\r\nHost: a\nX-A: 1\r\n\r\n"},
		{"bare CR inside a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\r2\r\n\r\n"},
		{"NUL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x002\r\n\r\n"},
		{"control character in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: \x1b[0m\r\n\r\n"},
		{"DEL in a value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: 1\x7f\r\n\r\n"},
		{"control character in Host", "GET / HTTP/1.1\r\nHost: a\x01b\r\n\r\n"},
		{"empty line before the request", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"},
		// Known as soon as the line that says so has arrived, before the head ends.
		{"empty line alone", "\r\n"},
		{"HTTP/1.0, head not ended", "GET / HTTP/1.0\r\nHost: a\r\n"},
		{"bad field name, head not ended", "GET / HTTP/1.1\r\nX(A): 1\r\nHost: a"},
		{"head one byte over maxHeaderBytes", big},
		{"incomplete head of maxHeaderBytes", big[:maxHeaderBytes]},
		{"incomplete head over maxHeaderBytes", wirePad(t, maxHeaderBytes+100)[:maxHeaderBytes+50]},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var h reqHead
			if v := parseRequestHead([]byte(tc.head), &h); v != headOther {
				t.Errorf("%s: verdict %d, want headOther", wireShort(tc.head), v)
			}
		})
	}
}

func TestParseRequestHeadWithABody(t *testing.T) {
	cases := []struct {
		head, body string
	}{
		{"POST /api HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n", `{"id": "one"}`},
		{"PUT /x HTTP/1.1\r\ncontent-length:\t5 \r\nHost: a\r\n\r\n", "hello"},
		{"PATCH /x HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", ""},
		{"DELETE /x HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\n", "{}"},
		{"OPTIONS /x HTTP/1.1\r\nHost: a\r\n\r\n", ""},
		{"POST / HTTP/1.1\r\nHost: a\r\n\r\n", ""},
		{"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\n", "abc"},
		// The body may hold what looks like a request: it is the body.
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 28\r\n\r\n", "GET /x HTTP/1.1\r\nHost: b\r\n\r\n"},
		{"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(loopRequestMax-60) + "\r\n\r\n", strings.Repeat("z", loopRequestMax-60)},
	}
	for _, tc := range cases {
		for _, tail := range []string{"", "GET /next HTTP/1.1\r\nHost: a\r\n\r\n"} {
			req := tc.head + tc.body
			b := []byte(req + tail)
			for i := range len(b) + 1 {
				var h reqHead
				v := parseRequestHead(b[:i], &h)
				want := headPlain
				switch {
				case i < len(tc.head):
					want = headIncomplete
				case i < len(req):
					want = headBody
				}
				if v != want {
					t.Fatalf("%s cut at %d: verdict %d, want %d", wireShort(req), i, v, want)
				}
				if v == headIncomplete {
					continue
				}
				if h.size != len(tc.head) || h.length != len(tc.body) {
					t.Fatalf("%s cut at %d: size %d length %d, want %d %d", wireShort(req), i, h.size, h.length, len(tc.head), len(tc.body))
				}
			}
		}
	}
	// A head and body that do not fit together in the loop's buffer go to the fasthttp path.
	var h reqHead
	head := "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + strconv.Itoa(loopRequestMax-10) + "\r\n\r\n"
	if v := parseRequestHead([]byte(head), &h); v != headOther {
		t.Errorf("head and body of %d bytes: verdict %d, want headOther", len(head)+loopRequestMax-10, v)
	}
}

func TestParseRequestHeadAtMaxHeaderBytesIsPlain(t *testing.T) {
	head := wirePad(t, maxHeaderBytes)
	var h reqHead
	if v := parseRequestHead([]byte(head+"GET / HTTP/1.1\r\n"), &h); v != headPlain || h.size != maxHeaderBytes {
		t.Fatalf("head of exactly maxHeaderBytes: verdict %d size %d", v, h.size)
	}
	if v := parseRequestHead([]byte(head[:maxHeaderBytes-1]), &h); v != headIncomplete {
		t.Errorf("the same head less its last byte: verdict %d, want headIncomplete", v)
	}
}

// A head whose request line ends in CRLF but whose later lines end in a bare
// LF never completes for the loop: it goes to the fasthttp path at once rather
// than waiting for a CRLFCRLF until the head timeout.
func TestParseRequestHeadBareLFAfterTheRequestLineIsOther(t *testing.T) {
	for _, in := range []string{
		"GET / HTTP/1.1\r\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\nX: 1\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\n\n",
	} {
		var h reqHead
		if v := parseRequestHead([]byte(in), &h); v != headOther {
			t.Errorf("%q: verdict %d, want headOther", in, v)
		}
	}
}

func TestParseResponseHead(t *testing.T) {
	cases := []struct {
		name    string
		in      string
		head    bool
		code    int
		reason  string
		mode    int
		length  int64
		keep    bool
		sse     bool
		hasDate bool
		fields  []string
	}{
		{
			name: "Content-Length",
			in:   "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello",
			code: 200, reason: "OK", mode: bodyLength, length: 5, keep: true,
			fields: []string{"Content-Type: text/plain"},
		},
		{
			name: "Content-Length repeated with the same value",
			in:   "HTTP/1.1 200 OK\r\nContent-Length: 5\r\ncontent-length:5\r\n\r\n",
			code: 200, reason: "OK", mode: bodyLength, length: 5, keep: true,
			fields: []string{},
		},
		{
			name: "zero Content-Length",
			in:   "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
			code: 404, reason: "Not Found", mode: bodyLength, length: 0, keep: true,
			fields: []string{},
		},
		{
			name: "chunked",
			in:   "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
			code: 200, reason: "OK", mode: bodyChunked, length: -1, keep: true,
			fields: []string{"X-A: 1"},
		},
		{
			name: "chunked in upper case beats Content-Length",
			in:   "HTTP/1.1 200 OK\r\nContent-Length: 10\r\nTransfer-Encoding:  CHUNKED \r\n\r\n",
			code: 200, reason: "OK", mode: bodyChunked, length: -1, keep: true,
			fields: []string{},
		},
		{
			name: "HTTP/1.1 without length reads until EOF",
			in:   "HTTP/1.1 200 OK\r\nX-A: 1\r\n\r\n",
			code: 200, reason: "OK", mode: bodyUntilEOF, length: -1, keep: false,
			fields: []string{"X-A: 1"},
		},
		{
			name: "HTTP/1.0 without length reads until EOF",
			in:   "HTTP/1.0 200 OK\r\n\r\n",
			code: 200, reason: "OK", mode: bodyUntilEOF, length: -1, keep: false,
			fields: []string{},
		},
		{
			name: "HTTP/1.0 keep-alive without length still reads until EOF",
			in:   "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n",
			code: 200, reason: "OK", mode: bodyUntilEOF, length: -1, keep: false,
			fields: []string{},
		},
		{
			name: "HTTP/1.0 keep-alive with a length",
			in:   "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nKeep-Alive: timeout=5\r\nContent-Length: 2\r\n\r\nok",
			code: 200, reason: "OK", mode: bodyLength, length: 2, keep: true,
			fields: []string{},
		},
		{
			name: "HTTP/1.0 with a length, no keep-alive",
			in:   "HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok",
			code: 200, reason: "OK", mode: bodyLength, length: 2, keep: false,
			fields: []string{},
		},
		{
			name: "Connection close",
			in:   "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok",
			code: 200, reason: "OK", mode: bodyLength, length: 2, keep: false,
			fields: []string{},
		},
		{
			name: "Connection close beats keep-alive",
			in:   "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\nConnection: close\r\nContent-Length: 2\r\n\r\n",
			code: 200, reason: "OK", mode: bodyLength, length: 2, keep: false,
			fields: []string{},
		},
		{
			name: "204 has no body",
			in:   "HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n",
			code: 204, reason: "No Content", mode: bodyNone, length: -1, keep: true,
			fields: []string{"X-A: 1"},
		},
		{
			name: "304 has no body despite a length",
			in:   "HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n",
			code: 304, reason: "Not Modified", mode: bodyNone, length: 100, keep: true,
			fields: []string{"ETag: \"x\""},
		},
		{
			name: "answer to HEAD has no body, keeps its length",
			in:   "HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
			head: true,
			code: 200, reason: "OK", mode: bodyNone, length: 1234, keep: true,
			fields: []string{},
		},
		{
			name: "answer to HEAD without length keeps the connection",
			in:   "HTTP/1.1 200 OK\r\n\r\n",
			head: true,
			code: 200, reason: "OK", mode: bodyNone, length: -1, keep: true,
			fields: []string{},
		},
		{
			name: "100 Continue",
			in:   "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
			code: 100, reason: "Continue", mode: bodyNone, length: -1, keep: true,
			fields: []string{},
		},
		{
			name: "103 Early Hints",
			in:   "HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n",
			code: 103, reason: "Early Hints", mode: bodyNone, length: -1, keep: true,
			fields: []string{"Link: </a.css>; rel=preload"},
		},
		{
			name: "no reason phrase",
			in:   "HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
			code: 200, reason: "", mode: bodyLength, length: 0, keep: true,
			fields: []string{},
		},
		{
			name: "reason phrase with spaces",
			in:   "HTTP/1.1 418 I'm a teapot\r\nContent-Length: 0\r\n\r\n",
			code: 418, reason: "I'm a teapot", mode: bodyLength, length: 0, keep: true,
			fields: []string{},
		},
		{
			name: "server-sent events",
			in:   "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nCache-Control: no-cache\r\n\r\n",
			code: 200, reason: "OK", mode: bodyUntilEOF, length: -1, keep: false, sse: true,
			fields: []string{"Content-Type: text/event-stream; charset=utf-8", "Cache-Control: no-cache"},
		},
		{
			name: "server-sent events, chunked",
			in:   "HTTP/1.1 200 OK\r\ncontent-type:text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n",
			code: 200, reason: "OK", mode: bodyChunked, length: -1, keep: true, sse: true,
			fields: []string{"content-type: text/event-stream"},
		},
		{
			name: "other content type is not SSE",
			in:   "HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 0\r\n\r\n",
			code: 200, reason: "OK", mode: bodyLength, length: 0, keep: true,
			fields: []string{"Content-Type: text/html"},
		},
		{
			name: "Date",
			in:   "HTTP/1.1 200 OK\r\ndate: Tue, 01 Jan 2030 00:00:00 GMT\r\nContent-Length: 0\r\n\r\n",
			code: 200, reason: "OK", mode: bodyLength, length: 0, keep: true, hasDate: true,
			fields: []string{"date: Tue, 01 Jan 2030 00:00:00 GMT"},
		},
		{
			name: "hop-by-hop fields, request ID and the fields Connection names are removed",
			in: "HTTP/1.1 200 OK\r\n" +
				"Connection: keep-alive, X-Private, x-other\r\n" +
				"Keep-Alive: timeout=5\r\n" +
				"Proxy-Connection: keep-alive\r\n" +
				"TE: trailers\r\n" +
				"Upgrade: h2c\r\n" +
				"x-request-id: upstream-id\r\n" +
				"X-Private: secret\r\n" +
				"X-Other: 2\r\n" +
				"X-Kept: 1\r\n" +
				"Set-Cookie: a=1\r\n" +
				"Set-Cookie: b=2\r\n" +
				"Content-Length: 0\r\n\r\n",
			code: 200, reason: "OK", mode: bodyLength, length: 0, keep: true,
			fields: []string{"X-Kept: 1", "Set-Cookie: a=1", "Set-Cookie: b=2"},
		},
		{
			name: "values are trimmed, empty values kept",
			in:   "HTTP/1.1 200 OK\r\nX-A:  \t1 2\t \r\nX-B:\r\nContent-Length: 0\r\n\r\n",
			code: 200, reason: "OK", mode: bodyLength, length: 0, keep: true,
			fields: []string{"X-A: 1 2", "X-B: "},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.in)
			var h respHead
			ok, err := parseResponseHead(b, tc.head, wireReqIDName, &h)
			if !ok || err != nil {
				t.Fatalf("ok %v err %v", ok, err)
			}
			if want := strings.Index(tc.in, "\r\n\r\n") + 4; h.size != want {
				t.Errorf("size %d, want %d", h.size, want)
			}
			if h.code != tc.code || string(h.reason) != tc.reason {
				t.Errorf("status %d %q, want %d %q", h.code, h.reason, tc.code, tc.reason)
			}
			if h.mode != tc.mode || h.length != tc.length {
				t.Errorf("mode %d length %d, want mode %d length %d", h.mode, h.length, tc.mode, tc.length)
			}
			if h.keep != tc.keep || h.sse != tc.sse || h.hasDate != tc.hasDate {
				t.Errorf("keep %v sse %v hasDate %v, want %v %v %v", h.keep, h.sse, h.hasDate, tc.keep, tc.sse, tc.hasDate)
			}
			if got := wireFields(b, h.fields); !slices.Equal(got, tc.fields) {
				t.Errorf("fields %q, want %q", got, tc.fields)
			}
		})
	}
}

func TestParseResponseHeadIncomplete(t *testing.T) {
	full := "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: 1\r\n\r\n"
	for i := 0; i < len(full); i++ {
		var h respHead
		ok, err := parseResponseHead([]byte(full[:i]), false, wireReqIDName, &h)
		if ok || err != nil {
			t.Fatalf("cut at %d: ok %v err %v, want incomplete", i, ok, err)
		}
	}
	var h respHead
	if ok, err := parseResponseHead([]byte(full+"ok"), false, wireReqIDName, &h); !ok || err != nil || h.size != len(full) {
		t.Fatalf("whole: ok %v err %v size %d", ok, err, h.size)
	}
}

func TestParseResponseHeadResetsStateBetweenCalls(t *testing.T) {
	var h respHead
	b := []byte("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nDate: x\r\nContent-Length: 3\r\nX-A: 1\r\n\r\n")
	if ok, err := parseResponseHead(b, false, wireReqIDName, &h); !ok || err != nil || !h.sse || !h.hasDate {
		t.Fatalf("first: ok %v err %v sse %v date %v", ok, err, h.sse, h.hasDate)
	}
	b = []byte("HTTP/1.1 200 OK\r\n\r\n")
	if ok, err := parseResponseHead(b, false, wireReqIDName, &h); !ok || err != nil {
		t.Fatalf("second: ok %v err %v", ok, err)
	}
	if h.sse || h.hasDate || h.length != -1 || len(h.fields) != 0 {
		t.Errorf("state leaked: sse %v date %v length %d fields %d", h.sse, h.hasDate, h.length, len(h.fields))
	}
}

func TestParseResponseHeadErrors(t *testing.T) {
	cases := []struct{ name, in string }{
		{"HTTP/2", "HTTP/2 200 OK\r\n\r\n"},
		{"lower-case protocol", "http/1.1 200 OK\r\n\r\n"},
		{"no status code", "HTTP/1.1\r\n\r\n"},
		{"short status code", "HTTP/1.1 20\r\n\r\n"},
		{"four-digit status code", "HTTP/1.1 2000 OK\r\n\r\n"},
		{"non-numeric status code", "HTTP/1.1 2x0 OK\r\n\r\n"},
		{"status code below 100", "HTTP/1.1 099 Odd\r\n\r\n"},
		{"signed status code", "HTTP/1.1 +20 OK\r\n\r\n"},
		{"two spaces before the code", "HTTP/1.1  200 OK\r\n\r\n"},
		{"not HTTP at all", "SSH-2.0-OpenSSH\r\n\r\n"},
		{"empty status line", "\r\n\r\n"},
		{"non-numeric Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\n"},
		{"empty Content-Length", "HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n"},
		{"negative Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"},
		{"Content-Length list", "HTTP/1.1 200 OK\r\nContent-Length: 5, 5\r\n\r\n"},
		{"Content-Length with inner space", "HTTP/1.1 200 OK\r\nContent-Length: 1 2\r\n\r\n"},
		{"Content-Length overflowing int64", "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n"},
		{"conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"},
		{"Transfer-Encoding gzip", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"},
		{"Transfer-Encoding gzip, chunked", "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"},
		{"Transfer-Encoding identity", "HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n"},
		{"empty Transfer-Encoding", "HTTP/1.1 200 OK\r\nTransfer-Encoding:\r\n\r\n"},
		{"obs-fold", "HTTP/1.1 200 OK\r\nX-A: 1\r\n 2\r\n\r\n"},
		{"obs-fold with tab", "HTTP/1.1 200 OK\r\nX-A: 1\r\n\t2\r\n\r\n"},
		{"field line without colon", "HTTP/1.1 200 OK\r\nX-A\r\n\r\n"},
		{"empty field name", "HTTP/1.1 200 OK\r\n: 1\r\n\r\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, head := range []bool{false, true} {
				var h respHead
				ok, err := parseResponseHead([]byte(tc.in), head, wireReqIDName, &h)
				if ok || err == nil {
					t.Errorf("%q (head %v): ok %v err %v, want an error", tc.in, head, ok, err)
				}
			}
		})
	}
}

// wireValidResponseHead reports why the passed-on part of a parsed response
// head could be read differently by the client, or "" if it cannot: the loop
// writes the reason and every kept field to the client byte for byte.
func wireValidResponseHead(b []byte, h *respHead) string {
	for _, c := range h.reason {
		if c < ' ' && c != '\t' || c == 0x7f {
			return "control character in the reason phrase"
		}
	}
	for _, f := range h.fields {
		for _, c := range f.name(b) {
			if !isTokenChar(c) {
				return "non-token character in field name " + string(f.name(b))
			}
		}
		for _, c := range f.value(b) {
			if c < ' ' && c != '\t' || c == 0x7f {
				return "control character in the value of " + string(f.name(b))
			}
		}
	}
	return ""
}

func TestParseResponseHeadDoesNotPassOnMalformedFields(t *testing.T) {
	cases := []string{
		"HTTP/1.1 200 OK\r\nX-A: 1\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nX-A: 1\rContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nContent-Length : 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\nSet-Cookie: a=b\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 0\r\n\r\n",
	}
	for _, in := range cases {
		var h respHead
		ok, err := parseResponseHead([]byte(in), false, wireReqIDName, &h)
		if err != nil {
			continue
		}
		if !ok {
			t.Errorf("%q: incomplete", in)
			continue
		}
		if why := wireValidResponseHead([]byte(in), &h); why != "" {
			t.Errorf("%q: accepted with %s", in, why)
		}
	}
}

func TestParseResponseHeadContentLengthIsDigitsOnly(t *testing.T) {
	var h respHead
	if ok, err := parseResponseHead([]byte("HTTP/1.1 200 OK\r\nContent-Length: +5\r\n\r\nhello"), false, wireReqIDName, &h); err == nil {
		t.Errorf("ok %v, mode %d length %d: want an error", ok, h.mode, h.length)
	}
}

// wireScanPieces feeds body to a fresh scanner in the pieces given by the cut
// offsets, and returns the total offset where the body ended or failed.
func wireScanPieces(body []byte, cuts ...int) (n int, done bool, err error) {
	var s chunkScanner
	prev := 0
	for _, cut := range append(cuts, len(body)) {
		k, d, e := s.scan(body[prev:cut])
		if d || e != nil {
			return prev + k, d, e
		}
		if k != cut-prev {
			return prev + k, false, errors.New("scanner stopped early without saying why")
		}
		prev = cut
	}
	return prev, false, nil
}

var wireGoodChunked = []struct{ name, body string }{
	{"empty body", "0\r\n\r\n"},
	{"one chunk", "5\r\nhello\r\n0\r\n\r\n"},
	{"several chunks", "5\r\nhello\r\n1\r\n \r\n6\r\nworld!\r\n0\r\n\r\n"},
	{"hex sizes in both cases", "a\r\n0123456789\r\nB\r\n0123456789a\r\n10\r\n0123456789abcdef\r\n0\r\n\r\n"},
	{"leading zeros", "0005\r\nhello\r\n000\r\n\r\n"},
	{"fifteen size digits", "00000000000000A\r\n0123456789\r\n0\r\n\r\n"},
	{"data holding CRLF and chunk-like bytes", "a\r\n0\r\n\r\n\r\n\r\nX\r\n0\r\n\r\n"},
	{"chunk extensions", "5;name=value;x\r\nhello\r\n3;q=\"a b\"\r\nabc\r\n0;last\r\n\r\n"},
	{"empty extension", "5;\r\nhello\r\n0\r\n\r\n"},
	{"trailers", "5\r\nhello\r\n0\r\nX-Trailer: 1\r\nY: 2\r\n\r\n"},
	{"extension and trailer on the last chunk", "0;a=b\r\nChecksum: abc\r\n\r\n"},
}

func TestChunkScannerFindsTheEnd(t *testing.T) {
	for _, tc := range wireGoodChunked {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			// Whole, and followed by the next response.
			for _, extra := range []string{"", "HTTP/1.1 200 OK\r\n\r\n", "0\r\n\r\n"} {
				var s chunkScanner
				n, done, err := s.scan(append(append([]byte(nil), body...), extra...))
				if err != nil || !done || n != len(body) {
					t.Errorf("extra %q: n %d done %v err %v, want n %d done", extra, n, done, err, len(body))
				}
			}
			// One byte at a time.
			var s chunkScanner
			for i := range body {
				n, done, err := s.scan(body[i : i+1])
				if err != nil || n != 1 || done != (i == len(body)-1) {
					t.Fatalf("byte %d: n %d done %v err %v", i, n, done, err)
				}
			}
			// In two pieces cut everywhere, and in three.
			for i := 0; i <= len(body); i++ {
				if n, done, err := wireScanPieces(body, i); !done || err != nil || n != len(body) {
					t.Fatalf("cut at %d: n %d done %v err %v", i, n, done, err)
				}
				for j := i; j <= len(body); j += 3 {
					if n, done, err := wireScanPieces(append(body, "XYZ"...), i, j); !done || err != nil || n != len(body) {
						t.Fatalf("cut at %d and %d: n %d done %v err %v", i, j, n, done, err)
					}
				}
			}
			// Any proper prefix is not done yet.
			for i := 0; i < len(body); i++ {
				var s chunkScanner
				if n, done, err := s.scan(body[:i]); done || err != nil || n != i {
					t.Fatalf("prefix %d: n %d done %v err %v", i, n, done, err)
				}
			}
		})
	}
}

func TestChunkScannerLargeChunkInPieces(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
	body := append([]byte("10000\r\n"), data...)
	body = append(body, "\r\n0\r\n\r\n"...)
	for _, step := range []int{1, 7, 1000, 65536} {
		var s chunkScanner
		total := 0
		done := false
		for off := 0; off < len(body) && !done; off += step {
			end := min(off+step, len(body))
			n, d, err := s.scan(body[off:end])
			if err != nil {
				t.Fatalf("step %d: error at %d: %v", step, off+n, err)
			}
			total += n
			done = d
		}
		if !done || total != len(body) {
			t.Errorf("step %d: done %v at %d, want %d", step, done, total, len(body))
		}
	}
}

func TestChunkScannerErrors(t *testing.T) {
	cases := []struct {
		name string
		body string
		at   int // offset of the byte found bad
	}{
		{"non-hex size", "g\r\n", 0},
		{"non-hex digit after a hex one", "5x\r\nhello\r\n0\r\n\r\n", 1},
		{"empty size", "\r\nhello\r\n", 0},
		{"extension without size", ";a\r\n", 0},
		{"space before the size", " 5\r\nhello\r\n0\r\n\r\n", 0},
		{"space after the size", "5 \r\nhello\r\n0\r\n\r\n", 1},
		{"negative size", "-5\r\n", 0},
		{"sixteen size digits", "0000000000000005\r\nhello\r\n0\r\n\r\n", 15},
		{"size too big", "fffffffffffffffff\r\n", 15},
		{"bare LF after the size", "5\nhello\r\n0\r\n\r\n", 1},
		{"CR without LF after the size", "5\rhello\r\n0\r\n\r\n", 2},
		{"LF in an extension", "5;a\nb\r\nhello\r\n0\r\n\r\n", 3},
		{"missing CRLF after the data", "5\r\nhelloX\r\n0\r\n\r\n", 8},
		{"data longer than the size", "3\r\nhello\r\n0\r\n\r\n", 6},
		{"bare LF after the data", "5\r\nhello\n0\r\n\r\n", 8},
		{"CR without LF after the data", "5\r\nhello\rX0\r\n\r\n", 9},
		{"bare CR in a trailer", "0\r\nX: a\rb\r\n\r\n", 8},
		{"CR without LF at the end", "0\r\n\rX", 4},
		{"trailer line too long", "0\r\nX: " + strings.Repeat("a", maxHeaderBytes) + "\r\n\r\n", 3 + maxHeaderBytes},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			body := []byte(tc.body)
			var s chunkScanner
			n, done, err := s.scan(body)
			if err == nil || done {
				t.Fatalf("whole: n %d done %v err %v, want an error", n, done, err)
			}
			if n != tc.at {
				t.Errorf("whole: error at %d, want %d", n, tc.at)
			}
			for i := 0; i <= len(body); i += max(1, len(body)/256) {
				if n2, done, err := wireScanPieces(body, i); err == nil || done || n2 != n {
					t.Fatalf("cut at %d: n %d done %v err %v, want the error at %d", i, n2, done, err, n)
				}
			}
		})
	}
}

// A bare LF in the trailer section: net/http's client and the router's own
// fasthttp path (chunkedBody.trailers in proxy.go) take it as a line end, so a
// scanner that did not would disagree with them on where the body ends; it
// refuses the body instead.
func TestChunkScannerRefusesBareLFInTrailers(t *testing.T) {
	for _, in := range []string{"1\r\na\r\n0\r\n\nHTTP/1.1 204 No Content\r\n\r\n", "0\r\n\n\r\n\r\n", "0\r\nX: a\n\r\n\r\n"} {
		var s chunkScanner
		if n, done, err := s.scan([]byte(in)); err == nil {
			t.Errorf("%q: n %d done %v, want an error", in, n, done)
		}
	}
}

func TestCookieValue(t *testing.T) {
	cases := []struct {
		field, name string
		want        string
		found       bool
	}{
		{"bg=blue", "bg", "blue", true},
		{"a=1; bg=green; c=3", "bg", "green", true},
		{"a=1;bg=green", "bg", "green", true},
		{"  bg=blue  ", "bg", "blue", true},
		{`bg="blue"`, "bg", "blue", true},
		{"bg=blue; bg=green", "bg", "blue", true},
		{"a=x=y", "a", "x=y", true},
		{"bgx=1; xbg=2", "bg", "", false},
		{"BG=blue", "bg", "", false},
		{"bg", "bg", "", false},
		{"", "bg", "", false},
		{";;;", "bg", "", false},
		{"a=1; bg", "bg", "", false},
	}
	for _, tc := range cases {
		got := cookieValue([]byte(tc.field), tc.name)
		if string(got) != tc.want || (got != nil) != tc.found {
			t.Errorf("cookieValue(%q, %q) = %q (nil %v), want %q found %v", tc.field, tc.name, got, got == nil, tc.want, tc.found)
		}
	}
	// An empty value is no value to route by.
	if got := cookieValue([]byte("a=1; bg="), "bg"); len(got) != 0 {
		t.Errorf("empty cookie value: %q", got)
	}
}

func TestASCIIEqualFold(t *testing.T) {
	cases := []struct {
		b, s string
		want bool
	}{
		{"", "", true},
		{"host", "Host", true},
		{"CONTENT-LENGTH", "content-length", true},
		{"Keep-Alive", "keep-alive", true},
		{"x-request-id", "X-Request-ID", true},
		{"Host", "Hos", false},
		{"Hos", "Host", false},
		{"Hosu", "Host", false},
		{"@", "`", false}, // differ by 0x20 but are not letters
		{"[", "{", false},
		{"^", "~", false},
		{"\xc3\xa9", "\xc3\x89", false}, // é and É: only ASCII folds
		{"K", "\xe2\x84\xaa", false},    // Kelvin sign
	}
	for _, tc := range cases {
		if got := asciiEqualFold([]byte(tc.b), tc.s); got != tc.want {
			t.Errorf("asciiEqualFold(%q, %q) = %v, want %v", tc.b, tc.s, got, tc.want)
		}
	}
}

func FuzzRequestHeadAgreesWithNetHTTP(f *testing.F) {
	seeds := []string{
		"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
		"HEAD /x?y=1 HTTP/1.1\r\nHost: example.com:80\r\nConnection: close\r\n\r\n",
		"GET /p HTTP/1.1\r\nhost:\t example.org \t\r\nAccept: */*\r\nCookie: a=1; bg=blue\r\nX-Empty:\r\n\r\nGET / HTTP/1.1\r\n",
		"GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET //a/b HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET /#frag HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, , close\r\nPragma: no-cache\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
		"PUT /x HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET / HTTP/1.1\r\n",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhel",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
		"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 05\r\n\r\nhello",
		"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
		"GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost : a\r\n\r\n",
		"GET / HTTP/1.1\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\n\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: \x01\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\n",
		"",
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var h reqHead
		v := parseRequestHead(b, &h)
		switch v {
		case headIncomplete:
			if bytes.Contains(b, crlfcrlf) {
				t.Fatalf("headIncomplete for %q, which holds a CRLFCRLF", b)
			}
			if len(b) >= maxHeaderBytes {
				t.Fatalf("headIncomplete for %d bytes, more than maxHeaderBytes", len(b))
			}
			return
		case headOther:
			return
		case headBody:
			if h.size+h.length <= len(b) || h.length <= 0 {
				t.Fatalf("headBody with size %d and length %d for %d bytes", h.size, h.length, len(b))
			}
			return
		case headPlain:
		default:
			t.Fatalf("verdict %d", v)
		}
		if h.size > len(b) || h.size > maxHeaderBytes || !bytes.HasSuffix(b[:h.size], crlfcrlf) {
			t.Fatalf("size %d of %d bytes (%q)", h.size, len(b), b)
		}
		if h.length < 0 || h.size+h.length > len(b) || h.size+h.length > loopRequestMax {
			t.Fatalf("size %d and length %d of %d bytes", h.size, h.length, len(b))
		}
		head := b[:h.size]
		whole := b[:h.size+h.length]
		for _, fl := range h.fields {
			if fl.k0 < 0 || fl.k0 >= fl.k1 || fl.k1 > fl.v0 || fl.v0 > fl.v1 || int(fl.v1) > h.size {
				t.Fatalf("field span %+v outside the head of %d bytes", fl, h.size)
			}
		}
		// The request alone, without what follows it, is read the same way.
		var h2 reqHead
		if v2 := parseRequestHead(whole, &h2); v2 != headPlain || h2.size != h.size || h2.close != h.close || h2.length != h.length {
			t.Fatalf("request alone: verdict %d size %d close %v length %d", v2, h2.size, h2.close, h2.length)
		}
		req, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(whole)))
		if err != nil {
			// The loop forwards the target byte for byte, as the fasthttp path
			// does; net/http alone also insists that percent-escapes are valid
			// ("/%zz"). That is the one refusal allowed here.
			var uerr *url.Error
			if errors.As(err, &uerr) {
				if _, perr := url.ParseRequestURI(string(h.target)); perr != nil {
					return
				}
			}
			t.Fatalf("headPlain, but net/http refuses %q: %v", head, err)
		}
		if req.Method != string(h.method) || req.RequestURI != string(h.target) {
			t.Fatalf("net/http reads %q %q, parseRequestHead %q %q", req.Method, req.RequestURI, h.method, h.target)
		}
		if req.Host != string(h.host) || string(h.lookup(head, "Host")) != string(h.host) {
			t.Fatalf("net/http Host %q, parseRequestHead %q", req.Host, h.host)
		}
		if req.ContentLength != int64(h.length) || len(req.TransferEncoding) != 0 {
			t.Fatalf("net/http sees a body of length %d, transfer encoding %q; parseRequestHead length %d", req.ContentLength, req.TransferEncoding, h.length)
		}
		if body, err := io.ReadAll(req.Body); err != nil || !bytes.Equal(body, whole[h.size:]) {
			t.Fatalf("net/http reads the body %q (%v), parseRequestHead %q", body, err, whole[h.size:])
		}
		if req.ProtoMajor != 1 || req.ProtoMinor != 1 {
			t.Fatalf("net/http reads version %d.%d", req.ProtoMajor, req.ProtoMinor)
		}
		if req.Close != h.close {
			t.Fatalf("net/http Close %v, parseRequestHead close %v", req.Close, h.close)
		}
		for _, fl := range h.fields {
			name, value := string(fl.name(head)), string(fl.value(head))
			if asciiEqualFold(fl.name(head), "Host") {
				continue // net/http moves it to req.Host, compared above
			}
			found := false
			for _, v := range req.Header.Values(name) {
				found = found || v == value
			}
			if !found {
				t.Fatalf("field %q: %q, net/http has %q", name, value, req.Header.Values(name))
			}
		}
	})
}

func FuzzResponseHead(f *testing.F) {
	seeds := []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
		"HTTP/1.1 200 OK\r\n\r\n",
		"HTTP/1.1 204 No Content\r\n\r\n",
		"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n",
		"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nDate: x\r\n\r\n",
		"HTTP/1.1 200 OK\r\nConnection: close, X-A\r\nX-A: 1\r\nKeep-Alive: 1\r\nX-Request-Id: u\r\nX-B: 2\r\n\r\n",
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
		"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
		"HTTP/1.1 200 OK\r\nX: 1\r\n 2\r\n\r\n",
		"HTTP/1.1 2x0 OK\r\n\r\n",
		"HTTP/1.1 200",
		"",
	}
	for i, s := range seeds {
		f.Add([]byte(s), i%3 == 0)
	}
	f.Fuzz(func(t *testing.T, b []byte, head bool) {
		var h respHead
		ok, err := parseResponseHead(b, head, wireReqIDName, &h)
		if err != nil {
			if ok {
				t.Fatalf("ok and error %v", err)
			}
			return
		}
		if !ok {
			if bytes.Contains(b, crlfcrlf) {
				t.Fatalf("incomplete, but %q holds a CRLFCRLF", b)
			}
			return
		}
		if h.size > len(b) || !bytes.HasSuffix(b[:h.size], crlfcrlf) {
			t.Fatalf("size %d of %d bytes", h.size, len(b))
		}
		for _, fl := range h.fields {
			if fl.k0 < 0 || fl.k0 >= fl.k1 || fl.k1 > fl.v0 || fl.v0 > fl.v1 || int(fl.v1) > h.size {
				t.Fatalf("field span %+v outside the head of %d bytes", fl, h.size)
			}
			for _, drop := range []string{"Content-Length", "Transfer-Encoding", "Connection", "Keep-Alive", "Proxy-Connection", "Te", "Upgrade", wireReqIDName} {
				if asciiEqualFold(fl.name(b), drop) {
					t.Fatalf("field %q passed on", fl.name(b))
				}
			}
		}
		if h.code < 100 || h.code > 999 {
			t.Fatalf("code %d", h.code)
		}
		switch h.mode {
		case bodyNone:
			if !(h.code < 200 || h.code == 204 || h.code == 304 || head) {
				t.Fatalf("no body for %d (head %v)", h.code, head)
			}
		case bodyLength:
			if h.length < 0 {
				t.Fatalf("length %d", h.length)
			}
		case bodyChunked:
			if h.length != -1 {
				t.Fatalf("chunked with length %d", h.length)
			}
		case bodyUntilEOF:
			if h.keep {
				t.Fatal("body until EOF on a connection kept open")
			}
		default:
			t.Fatalf("mode %d", h.mode)
		}
	})
}

func FuzzChunkScanner(f *testing.F) {
	for _, tc := range wireGoodChunked {
		f.Add([]byte(tc.body))
	}
	for _, s := range []string{
		"5\r\nhello\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n\r\n",
		"5\r\nhelloX\r\n0\r\n\r\n",
		"5;a\nb\r\nhello\r\n0\r\n\r\n",
		"0000000000000005\r\nhello\r\n0\r\n\r\n",
		"g\r\n",
		"5 \r\nhello\r\n0\r\n\r\n",
		"0\r\n\n\r\n\r\n",
		"0\r\nX: a\rb\r\n\r\n",
		"1\r\n\r\r\n0\r\n\r\n",
		"",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var s chunkScanner
		n, done, err := s.scan(b)
		if n < 0 || n > len(b) || done && err != nil {
			t.Fatalf("n %d of %d, done %v, err %v", n, len(b), done, err)
		}
		if !done && err == nil && n != len(b) {
			t.Fatalf("stopped at %d of %d without end or error", n, len(b))
		}
		// Pieces: the scanner keeps its state across calls, so where the body
		// ends, or where it goes wrong, does not depend on how it arrives.
		// Every cut of a short input; for a longer one, 64 cuts spread over it
		// and those around the end, to keep each run cheap for the fuzzer.
		cuts := []int{}
		step := max(1, len(b)/64)
		for i := 0; i <= len(b); i += step {
			cuts = append(cuts, i)
		}
		for i := max(0, n-4); i <= min(len(b), n+1); i++ {
			cuts = append(cuts, i)
		}
		for _, i := range cuts {
			n2, done2, err2 := wireScanPieces(b, i)
			if n2 != n || done2 != done || (err2 != nil) != (err != nil) {
				t.Fatalf("cut at %d: n %d done %v err %v; whole: n %d done %v err %v", i, n2, done2, err2, n, done, err)
			}
		}
		if done {
			// net/http's chunked reader stops right after the last chunk's
			// size line ("0\r\n") and never reads the trailer section, so the
			// property is: it decodes b[:n] without error, and what it leaves
			// of b[:n] is a trailer section, zero or more non-empty lines and
			// then the empty line, each ending in CRLF. Its reader has limits
			// the scanner has no need for, since the scanner keeps no line in
			// memory: a chunk line of 4 KiB or more, and extensions that add up
			// to more than 16 KiB beyond the data; those errors are allowed.
			r := bytes.NewReader(b[:n])
			br := bufio.NewReader(r)
			_, rerr := io.ReadAll(httputil.NewChunkedReader(br))
			if rerr != nil {
				if errors.Is(rerr, httputil.ErrLineTooLong) || strings.Contains(rerr.Error(), "too much non-data") {
					return
				}
				t.Fatalf("scanner done at %d, net/http: %v (body %q)", n, rerr, b[:n])
			}
			consumed := n - r.Len() - br.Buffered()
			tail := b[consumed:n]
			if end := bytes.Index(tail, crlfcrlf); !bytes.Equal(tail, []byte("\r\n")) && (end < 0 || end+4 != len(tail) || bytes.HasPrefix(tail, []byte("\r\n"))) {
				t.Fatalf("after the last chunk net/http leaves %q, not a trailer section", tail)
			}
		}
		// The other way round: when net/http reads a body without trailers to
		// its end, the scanner either refuses it (it is the stricter of the
		// two, e.g. about blanks after the size) or ends it at the same place.
		r := bytes.NewReader(b)
		br := bufio.NewReader(r)
		if _, rerr := io.ReadAll(httputil.NewChunkedReader(br)); rerr == nil {
			consumed := len(b) - r.Len() - br.Buffered()
			if bytes.HasPrefix(b[consumed:], []byte("\r\n")) && err == nil && (!done || n != consumed+2) {
				t.Fatalf("net/http reads the body to %d, the scanner: n %d done %v", consumed+2, n, done)
			}
		}
	})
}
