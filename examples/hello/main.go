// Command hello is the example app: a small web service that says which version
// it is. The router demo runs two of them side by side as blue and green, and
// its failure knobs (see config) make it misbehave in the ways a deployment
// has to cope with: failing health checks, errors, latency, slow starts,
// crashes and refusing to stop.
//
// Endpoints, all on -listen (default $HOST:$PORT, HOST 127.0.0.1 when
// unset):
//
//	/                     "hello from <version>"
//	/healthz              200 "ok", or 503 when told to fail (HELLO_HEALTH_PATH moves it)
//	/slow?ms=N            answers after N ms (at most 10 minutes)
//	/sse?n=N&interval=D   N server-sent events (default: until the client
//	                      leaves), one every D (default 100ms)
//	/ws                   WebSocket echo
//
// Every answer carries X-Version, and X-Instance and X-Fleet when BG_INSTANCE
// and BG_FLEET are set.
//
// SIGTERM or SIGINT stops it gracefully: it stops accepting, lets requests in
// flight finish for up to HELLO_SHUTDOWN_TIMEOUT, ends open-ended SSE streams
// and closes WebSockets with 1001, then exits 0 (1 if the timeout cut requests
// short). A second signal exits at once with status 1. It logs to stdout; a
// bad flag or environment value exits 2.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

func main() {
	port := os.Getenv("PORT")
	if port == "" {
		port = "9001"
	}
	// The Kubernetes platform sets HOST to the pod's IP, where the app is
	// reached from outside the pod's node.
	host := os.Getenv("HOST")
	if host == "" {
		host = "127.0.0.1"
	}
	listen := flag.String("listen", net.JoinHostPort(host, port), "address to listen on")
	flag.Parse()
	cfg, err := loadConfig(os.Getenv)
	if err == nil && !listenSet() {
		if n, perr := strconv.Atoi(port); perr != nil || n < 0 || n > 65535 {
			err = fmt.Errorf("PORT=%q: want a port number", port)
		}
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		os.Exit(2)
	}
	os.Exit(run(*listen, cfg, log.New(os.Stdout, "hello: ", log.LstdFlags|log.Lmicroseconds)))
}

func listenSet() (set bool) {
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "listen" })
	return set
}

// run serves until a signal stops it, and returns the exit status.
func run(addr string, cfg config, lg *log.Logger) int {
	stop := signals(cfg, lg)

	if cfg.startDelay > 0 {
		lg.Printf("waiting %s before listening (HELLO_START_DELAY)", cfg.startDelay)
		select {
		case <-time.After(cfg.startDelay):
		case s := <-stop:
			lg.Printf("stopped by %s before listening", s)
			return 0
		}
	}

	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		return 1
	}
	a := &app{cfg: cfg, log: lg, started: time.Now(), stopping: make(chan struct{})}
	srv := &http.Server{Handler: a.routes(), ReadHeaderTimeout: 10 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()

	line := fmt.Sprintf("hello %s listening on %s pid %d", cfg.version, ln.Addr(), os.Getpid())
	if cfg.instance != "" {
		line += " instance " + cfg.instance
	}
	if cfg.fleet != "" {
		line += " slot " + cfg.fleet
	}
	if len(cfg.knobs) > 0 {
		line += " with " + strings.Join(cfg.knobs, " ")
	}
	lg.Print(line)

	if cfg.exitAfter >= 0 {
		time.AfterFunc(cfg.exitAfter, func() {
			lg.Printf("exiting with status 1 (HELLO_EXIT_AFTER=%s)", cfg.exitAfter)
			os.Exit(1)
		})
	}

	var s os.Signal
	select {
	case err := <-served:
		fmt.Fprintf(os.Stderr, "hello: %v\n", err)
		return 1
	case s = <-stop:
	}

	lg.Printf("stopping on %s: waiting up to %s for requests in flight", s, cfg.shutdownTimeout)
	ctx, cancel := context.WithTimeout(context.Background(), cfg.shutdownTimeout)
	defer cancel()
	go func() {
		select {
		case s := <-stop:
			lg.Printf("second signal (%s): exiting now", s)
			os.Exit(1)
		case <-ctx.Done():
		}
	}()
	close(a.stopping)
	err = srv.Shutdown(ctx)
	sockets := make(chan struct{})
	go func() { a.sockets.Wait(); close(sockets) }()
	select {
	case <-sockets:
	case <-ctx.Done():
		err = ctx.Err()
	}
	if errors.Is(err, context.DeadlineExceeded) {
		lg.Printf("stopped: %s passed with requests still in flight; cutting them off", cfg.shutdownTimeout)
		srv.Close()
		return 1
	}
	lg.Print("stopped")
	return 0
}

// signals delivers SIGTERM and SIGINT, except SIGTERM under
// HELLO_IGNORE_SIGTERM, which is only logged.
func signals(cfg config, lg *log.Logger) <-chan os.Signal {
	in := make(chan os.Signal, 1)
	signal.Notify(in, syscall.SIGTERM, syscall.SIGINT)
	out := make(chan os.Signal, 1)
	go func() {
		for s := range in {
			if s == syscall.SIGTERM && cfg.ignoreSIGTERM {
				lg.Print("ignoring SIGTERM (HELLO_IGNORE_SIGTERM)")
				continue
			}
			select {
			case out <- s:
			default:
			}
		}
	}()
	return out
}
