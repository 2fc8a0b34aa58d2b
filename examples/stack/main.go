// Command stack is the example stack: a front end (web) that calls its back
// end (api) on every request, and says which version each of them is. One
// binary plays both parts: `stack web` and `stack api`. Deployed as the
// stack in this directory's bluegreen.yaml, it shows that a request that
// enters one colour's front end reaches that colour's back end only.
//
//	stack web [-api URL]   GET / calls URL/version (default $API_URL) and
//	                       answers "web v2, api v2" with X-Stack: v2/v2 (the
//	                       front end's version, then the back end's); a back
//	                       end that failed makes it 502
//	stack api              GET /version answers the version; any other path
//	                       "api v2 PATH"; with STACK_FAIL_EVERY=N, every Nth
//	                       request answers 500
//
// Both listen on 127.0.0.1:$PORT, answer GET /healthz, put X-Version on
// every answer, read their version from the file VERSION in the working
// directory ($VERSION when there is none), and stop gracefully on SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
)

func main() {
	if len(os.Args) < 2 || (os.Args[1] != "web" && os.Args[1] != "api") {
		fmt.Fprintln(os.Stderr, "usage: stack web [-api URL] | stack api")
		os.Exit(2)
	}
	role := os.Args[1]
	fs := flag.NewFlagSet(role, flag.ExitOnError)
	api := fs.String("api", os.Getenv("API_URL"), "the back end's URL (web)")
	_ = fs.Parse(os.Args[2:])
	lg := log.New(os.Stdout, role+": ", log.LstdFlags|log.Lmicroseconds)
	version := readVersion()
	var h http.Handler
	switch role {
	case "web":
		if *api == "" {
			fmt.Fprintln(os.Stderr, "stack web: no back end: give -api URL or set API_URL")
			os.Exit(2)
		}
		h = web(version, strings.TrimRight(*api, "/"))
	default:
		every, _ := strconv.Atoi(os.Getenv("STACK_FAIL_EVERY"))
		h = apiHandler(version, every)
	}
	addr := net.JoinHostPort("127.0.0.1", os.Getenv("PORT"))
	os.Exit(serve(addr, h, lg, version))
}

// readVersion is the version this copy says it is.
func readVersion() string {
	if b, err := os.ReadFile("VERSION"); err == nil {
		if v := strings.TrimSpace(string(b)); v != "" {
			return v
		}
	}
	if v := os.Getenv("VERSION"); v != "" {
		return v
	}
	return "dev"
}

// web is the front end: each page asks the back end for its version.
func web(version, api string) http.Handler {
	client := &http.Client{Timeout: 5 * time.Second}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok\n") })
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", version)
		req, _ := http.NewRequestWithContext(r.Context(), http.MethodGet, api+"/version", nil)
		resp, err := client.Do(req)
		if err != nil {
			w.Header().Set("X-Stack", version+"/-")
			http.Error(w, "web "+version+": the back end did not answer: "+err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<10))
		back := resp.Header.Get("X-Version")
		if back == "" {
			back = "-"
		}
		w.Header().Set("X-Stack", version+"/"+back)
		if resp.StatusCode != http.StatusOK {
			http.Error(w, fmt.Sprintf("web %s: the back end (%s) answered %s", version, back, resp.Status), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "web %s, api %s\n", version, strings.TrimSpace(string(body)))
	})
	return mux
}

// apiHandler is the back end.
func apiHandler(version string, failEvery int) http.Handler {
	var n atomic.Int64
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Version", version)
		switch {
		case r.URL.Path == "/healthz":
			io.WriteString(w, "ok\n")
		case failEvery > 0 && n.Add(1)%int64(failEvery) == 0:
			http.Error(w, "api "+version+": failing on purpose (STACK_FAIL_EVERY)", http.StatusInternalServerError)
		case r.URL.Path == "/version":
			io.WriteString(w, version+"\n")
		default:
			fmt.Fprintf(w, "api %s %s\n", version, r.URL.RequestURI())
		}
	})
}

// serve answers on addr until SIGTERM or SIGINT, then lets the requests in
// flight finish (10 s at most).
func serve(addr string, h http.Handler, lg *log.Logger, version string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		lg.Print(err)
		return 1
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	lg.Printf("%s listening on %s", version, ln.Addr())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM, syscall.SIGINT)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		lg.Print(err)
		return 1
	case s := <-stop:
		lg.Printf("stopping (%s)", s)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		lg.Printf("stopped with requests cut short: %v", err)
		return 1
	}
	lg.Print("stopped")
	return 0
}
