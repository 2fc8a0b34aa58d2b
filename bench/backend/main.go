// Command backend is the upstream used by the proxy benchmark: it reads the
// request body, if any, and answers every request with the same short body, so
// the cost measured is the proxy's, not the app's.
package main

import (
	"flag"
	"io"
	"log"
	"net/http"
	"strconv"
)

var body = []byte("hello from bench backend\n")

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on")
	name := flag.String("name", "backend", "value of the X-Backend response header")
	flag.Parse()

	length := strconv.Itoa(len(body))
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// Read before answering, as an API handler does.
		io.Copy(io.Discard, r.Body)
		h := w.Header()
		// Set explicitly so net/http neither sniffs the type nor counts the body.
		h["Content-Type"] = []string{"text/plain; charset=utf-8"}
		h["Content-Length"] = []string{length}
		h["X-Backend"] = []string{*name}
		w.Write(body)
	})
	log.Fatal(http.ListenAndServe(*addr, handler))
}
