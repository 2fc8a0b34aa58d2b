// Command hello is the example app: a small web service that says which version
// it is. The router demo runs two of them side by side as blue and green.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:"+envOr("PORT", "9001"), "address to listen on")
	flag.Parse()
	version := envOr("VERSION", "")
	if version == "" {
		// A VERSION file in the working directory travels with the bundle.
		if b, err := os.ReadFile("VERSION"); err == nil {
			version = strings.TrimSpace(string(b))
		}
	}
	if version == "" {
		version = "dev"
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", version)
		fmt.Fprintf(w, "hello from %s\n", version)
	})
	log.Printf("hello %s listening on %s", version, *listen)
	log.Fatal(http.ListenAndServe(*listen, mux))
}

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}
