package router

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"strconv"
	"testing"
	"time"

	"bluegreen/internal/freeport"
)

// BenchmarkTLSKeepAlive sends GETs one after another over one kept-alive
// HTTPS connection, through the router to an upstream that answers as the
// proxy benchmark's backends do. The client and the upstream are written
// to allocate next to nothing, so allocs/op are mostly the router's.
func BenchmarkTLSKeepAlive(b *testing.B) {
	dir := b.TempDir()
	ca := newTestCA(b)
	now := time.Now()
	cert, key := ca.issue(b, dir, "shop", []string{"shop.test"}, now.Add(-time.Hour), now.Add(time.Hour))
	up := fixedUpstream(b, benchRespHead[:bytes.Index(benchRespHead, []byte("\r\n\r\n"))+4], []byte("hello from bench backend\n"))
	prod := freeport.Must(b)
	r := New(Options{})
	b.Cleanup(func() { r.Shutdown(b.Context()) })
	if _, err := r.Apply(tlsApps(prod, map[string]*AppTLS{"shop.test": {CertFile: cert, KeyFile: key}}, up)); err != nil {
		b.Fatal(err)
	}
	raw, err := net.Dial("tcp", prod)
	if err != nil {
		b.Fatal(err)
	}
	c := tls.Client(raw, &tls.Config{RootCAs: ca.pool, ServerName: "shop.test", NextProtos: []string{"http/1.1"}})
	defer c.Close()
	br := bufio.NewReader(c)
	req := []byte("GET / HTTP/1.1\r\nHost: shop.test\r\nUser-Agent: bench\r\n\r\n")
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Write(req); err != nil {
			b.Fatal(err)
		}
		if err := readBenchResponse(br); err != nil {
			b.Fatal(err)
		}
	}
}

// readBenchResponse reads one response with a Content-Length body.
func readBenchResponse(br *bufio.Reader) error {
	length := -1
	for first := true; ; first = false {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return err
		}
		if first && !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
			return io.ErrUnexpectedEOF
		}
		if len(line) == 2 {
			break
		}
		if k, v, ok := bytes.Cut(line, []byte(":")); ok && asciiEqualFold(k, "Content-Length") {
			length, _ = strconv.Atoi(string(bytes.TrimSpace(v)))
		}
	}
	if length < 0 {
		return io.ErrUnexpectedEOF
	}
	_, err := br.Discard(length)
	return err
}

// fixedUpstream answers every request head it reads with head and body; it
// takes requests without a body only.
func fixedUpstream(b *testing.B, head, body []byte) string {
	resp := append(append([]byte(nil), head...), body...)
	return upstreamServer(b, func(c net.Conn) {
		br := bufio.NewReader(c)
		for {
			line, err := br.ReadSlice('\n')
			if err != nil {
				return
			}
			if len(line) == 2 {
				if _, err := c.Write(resp); err != nil {
					return
				}
			}
		}
	})
}
