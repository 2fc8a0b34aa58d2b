package router

import (
	"strconv"
	"strings"
	"testing"
)

func TestSmugglingVectorsAreRefused(t *testing.T) {
	be := newBackend(t, "blue")
	r := startRouter(t, oneFleet(be.addr()))
	addr := r.Config().Production
	smuggled := "GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
	for _, tc := range []struct {
		name, req, want string
	}{
		{"CL then TE", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + smuggled, "HTTP/1.1 400"},
		{"TE then CL", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 40\r\n\r\n0\r\n\r\n" + smuggled, "HTTP/1.1 400"},
		{"TE in other case", "POST / HTTP/1.1\r\nHost: x\r\ncontent-length: 4\r\ntransfer-ENCODING: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 400"},
		{"two different CL", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 40\r\n\r\nabc" + smuggled, "HTTP/1.1 400"},
		{"CL list", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3, 40\r\n\r\nabc", "HTTP/1.1 400"},
		{"CL with sign", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +3\r\n\r\nabc", "HTTP/1.1 400"},
		{"unknown coding", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 501"},
		{"chunked not last", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", "HTTP/1.1 501"},
		{"two TE fields", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", "HTTP/1.1 501"},
		{"space before colon", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\nContent-Length: 3\r\n\r\nabc", "HTTP/1.1 400"},
		{"obs-fold", "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nX-A: a\r\n b\r\n\r\nabc", "HTTP/1.1 400"},
		{"bad chunk size", "POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n", "HTTP/1.1 400"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := be.hits.Load()
			out := rawExchange(t, addr, tc.req)
			if !strings.HasPrefix(out, tc.want) {
				t.Fatalf("got %q, want %s", out, tc.want)
			}
			if strings.Contains(out, "HTTP/1.1 200") {
				t.Fatalf("a second response came back: %q", out)
			}
			// "bad chunk size" reaches the upstream before its body turns out bad.
			if tc.name != "bad chunk size" && be.hits.Load() != before {
				t.Fatalf("the upstream saw %d requests", be.hits.Load()-before)
			}
		})
	}
}

func TestGuardFollowsPipelinedFraming(t *testing.T) {
	be := newBackend(t, "blue")
	r := startRouter(t, oneFleet(be.addr()))
	// A chunked body holding what looks like a conflicting head, then a
	// fixed-length body, then a real conflict: only the last is refused.
	fakeHead := "POST /x HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
	chunk := strconv.FormatInt(int64(len(fakeHead)), 16)
	out := rawExchange(t, r.Config().Production,
		"POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"+chunk+";ext=1\r\n"+fakeHead+"\r\n0\r\nX-Trailer: t\r\n\r\n",
		"POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789",
		"GET /c HTTP/1.1\r\nHost: x\r\n\r\n",
		"POST /d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
	if n := strings.Count(out, "HTTP/1.1 200"); n != 3 || !strings.HasSuffix(strings.TrimSpace(out), "bluegreen: a request may not carry both Content-Length and Transfer-Encoding") {
		t.Fatalf("want three answers then a refusal, got %q", out)
	}
}

// FuzzGuardFraming feeds arbitrary bytes to the framing guard, whole and split
// at arbitrary points: whatever arrives, the guard must not panic, and how the
// bytes are cut into reads must not change a single verdict.
func FuzzGuardFraming(f *testing.F) {
	f.Add([]byte("POST /a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n0\r\nT: 1\r\n\r\nGET /b HTTP/1.1\r\n\r\n"), 7, 40)
	f.Add([]byte("POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc"), 1, 2)
	f.Add([]byte("GET / HTTP/1.1\r\nX: a\r\n b\r\n\r\nPUT /x HTTP/1.1\r\nContent-Length: 2\r\n\r\nokGET /y HTTP/1.0\n\n"), 30, 31)
	f.Add([]byte("GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\nGET http://b/x HTTP/1.1\r\nHost: a\r\n\r\n"), 20, 50)
	f.Add([]byte("GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n\r\nPOST / HTTP/1.1\r\nContent-Length: 6\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"), 60, 70)
	f.Fuzz(func(t *testing.T, data []byte, cut1, cut2 int) {
		whole := &guardConn{}
		whole.scan(data)
		parts := &guardConn{}
		a, b := clampCut(cut1, len(data)), clampCut(cut2, len(data))
		if a > b {
			a, b = b, a
		}
		parts.scan(data[:a])
		parts.scan(data[a:b])
		parts.scan(data[b:])
		if whole.off != parts.off || len(whole.verdicts) != len(parts.verdicts) {
			t.Fatalf("split at %d,%d changed the outcome: off %v/%v, %d/%d verdicts", a, b, whole.off, parts.off, len(whole.verdicts), len(parts.verdicts))
		}
		for i := range whole.verdicts {
			if whole.verdicts[i] != parts.verdicts[i] {
				t.Fatalf("verdict %d differs: %+v vs %+v", i, whole.verdicts[i], parts.verdicts[i])
			}
		}
	})
}

func clampCut(c, n int) int {
	if c < 0 {
		c = -c
	}
	if n == 0 {
		return 0
	}
	return c % (n + 1)
}

func TestOversizedHeadIsRefused(t *testing.T) {
	be := newBackend(t, "blue")
	r := startRouter(t, oneFleet(be.addr()))
	out := rawExchange(t, r.Config().Production, "GET / HTTP/1.1\r\nHost: x\r\nX-Big: "+strings.Repeat("a", 20<<10)+"\r\n\r\n")
	if !strings.HasPrefix(out, "HTTP/1.1 431") || !strings.Contains(out, "request headers are larger than the limit") {
		t.Fatalf("got %.200q", out)
	}
}

// FuzzGuardRefusesTwoHosts: a head with two Host fields, in any case and with
// any values and fields between them, is refused.
func FuzzGuardRefusesTwoHosts(f *testing.F) {
	f.Add("Host", "a.example", "host", "b.example", "X-A: 1")
	f.Add("HOST", "", "Host", "", "")
	f.Add("Host", "http://x", "hOsT", "a:80", "Content-Length: 0")
	f.Fuzz(func(t *testing.T, n1, v1, n2, v2, between string) {
		if !asciiEqualFold([]byte(n1), "Host") || !asciiEqualFold([]byte(n2), "Host") {
			return
		}
		clean := func(s string) string {
			return strings.Map(func(r rune) rune {
				if r == '\r' || r == '\n' {
					return -1
				}
				return r
			}, s)
		}
		mid := ""
		if b := clean(between); b != "" {
			if !strings.Contains(b, ":") || b[0] == ' ' || b[0] == '\t' {
				return
			}
			mid = b + "\r\n"
		}
		g := &guardConn{}
		g.scan([]byte("GET / HTTP/1.1\r\n" + n1 + ": " + clean(v1) + "\r\n" + mid + n2 + ": " + clean(v2) + "\r\n\r\n"))
		if v := g.pop([]byte("GET"), []byte("/")); v.code != 400 && v.code != 501 {
			t.Fatalf("two Host fields passed: %+v", v)
		}
	})
}
