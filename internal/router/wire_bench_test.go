package router

import "testing"

// Heads as the proxy benchmark's load and backends send them, and as a
// browser sends one: the parsers run once or twice per request on the loop.
var (
	benchGetHead     = []byte("GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n")
	benchBrowserHead = []byte("GET /shop/cart?id=42 HTTP/1.1\r\nHost: shop.example.com\r\n" +
		"User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\n" +
		"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n" +
		"Accept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate, br\r\n" +
		"Connection: keep-alive\r\nCookie: session=4f2a9c; bg_shop=blue\r\n" +
		"Upgrade-Insecure-Requests: 1\r\nSec-Fetch-Dest: document\r\nSec-Fetch-Mode: navigate\r\n\r\n")
	benchPostHead = []byte("POST /api/orders HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Type: application/json\r\n" +
		"Content-Length: 16\r\n\r\n{\"item\": \"book\"}")
	benchRespHead = []byte("HTTP/1.1 200 OK\r\nContent-Length: 25\r\nContent-Type: text/plain; charset=utf-8\r\n" +
		"Date: Thu, 05 Dec 2026 03:00:00 GMT\r\nX-Backend: b1\r\n\r\nhello from bench backend\n")
)

func BenchmarkParseRequestHead(b *testing.B) {
	for _, tc := range []struct {
		name string
		head []byte
	}{{"get", benchGetHead}, {"browser", benchBrowserHead}, {"post", benchPostHead}} {
		b.Run(tc.name, func(b *testing.B) {
			var h reqHead
			for b.Loop() {
				if parseRequestHead(tc.head, &h) != headPlain {
					b.Fatal("not plain")
				}
			}
		})
	}
}

func BenchmarkParseResponseHead(b *testing.B) {
	var h respHead
	for b.Loop() {
		if ok, err := parseResponseHead(benchRespHead, false, "X-Request-Id", &h); !ok || err != nil {
			b.Fatal(ok, err)
		}
	}
}
