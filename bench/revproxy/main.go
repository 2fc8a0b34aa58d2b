// Command revproxy is the baseline of the proxy benchmark: a plain
// httputil.ReverseProxy with a BufferPool, round-robin over the backends.
package main

import (
	"flag"
	"log"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
)

// bufferPool recycles the 32 KiB copy buffers ReverseProxy would otherwise allocate per request.
type bufferPool struct{ pool sync.Pool }

func (b *bufferPool) Get() []byte  { return *b.pool.Get().(*[]byte) }
func (b *bufferPool) Put(v []byte) { b.pool.Put(&v) }

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	backends := flag.String("backends", "", "comma-separated host:port list")
	flag.Parse()

	var targets []*url.URL
	for _, hp := range strings.Split(*backends, ",") {
		targets = append(targets, &url.URL{Scheme: "http", Host: hp})
	}
	var next atomic.Uint64
	pool := &bufferPool{pool: sync.Pool{New: func() any { b := make([]byte, 32*1024); return &b }}}
	proxy := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(targets[next.Add(1)%uint64(len(targets))])
			r.Out.Host = r.In.Host
		},
		BufferPool: pool,
		// The default of 2 idle connections per host would open a new upstream
		// connection for most requests at 64+ client connections.
		Transport: &http.Transport{MaxIdleConns: 1024, MaxIdleConnsPerHost: 512},
	}
	log.Fatal(http.ListenAndServe(*addr, proxy))
}
