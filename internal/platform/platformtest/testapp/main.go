// Command testapp is the web app the platform conformance suite runs. It
// answers "/" with its arguments and environment as JSON, "/healthz" with
// "ok", and "/print?n=N&size=S&tag=T&stream=stderr" by writing N numbered
// lines. It listens on PORT at HOST, the address a platform that sets one
// reaches it at (the Kubernetes platform: the pod's IP), else at BIND_HOST.
// Environment variables change its behaviour:
//
//	TESTAPP_IGNORE_TERM=1     ignore SIGTERM
//	TESTAPP_EXIT_AFTER_MS=N   exit by itself after N ms, with TESTAPP_EXIT_CODE
//	TESTAPP_FORK_SLEEP=1      start a child "sleep 1000" in its process group
//	TESTAPP_LINES=N           write N numbered lines at start
//
// "/file?path=P" answers with the file P's content, "/write?path=P" writes
// P (an error says why it cannot). It is a static binary, so that it runs
// alone in an image FROM scratch as well.
//
// Any stop signal it does not ignore makes it log "stopping on SIGNAME",
// finish the requests in flight and exit 0.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

var stopSignals = map[os.Signal]string{
	syscall.SIGTERM: "SIGTERM", syscall.SIGINT: "SIGINT", syscall.SIGQUIT: "SIGQUIT",
	syscall.SIGHUP: "SIGHUP", syscall.SIGUSR1: "SIGUSR1", syscall.SIGUSR2: "SIGUSR2",
	syscall.SIGWINCH: "SIGWINCH",
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "testapp:", err)
		os.Exit(1)
	}
}

func run() error {
	sigs := make(chan os.Signal, 1)
	for s := range stopSignals {
		signal.Notify(sigs, s)
	}
	if os.Getenv("TESTAPP_IGNORE_TERM") == "1" {
		signal.Ignore(syscall.SIGTERM)
		fmt.Println("ignoring SIGTERM")
	}
	host := os.Getenv("HOST")
	if host == "" {
		host = os.Getenv("BIND_HOST")
	}
	l, err := net.Listen("tcp", net.JoinHostPort(host, os.Getenv("PORT")))
	if err != nil {
		return err
	}
	fmt.Println("testapp listening on", l.Addr())
	fmt.Fprintln(os.Stderr, "testapp writes to stderr too")
	if n, _ := strconv.Atoi(os.Getenv("TESTAPP_LINES")); n > 0 {
		printLines(os.Stdout, "start", n, 0)
	}
	if os.Getenv("TESTAPP_FORK_SLEEP") == "1" {
		c := exec.Command("sleep", "1000")
		if err := c.Start(); err != nil {
			return err
		}
		fmt.Println("child", c.Process.Pid)
	}
	exitAfter := make(<-chan time.Time)
	if ms, err := strconv.Atoi(os.Getenv("TESTAPP_EXIT_AFTER_MS")); err == nil {
		exitAfter = time.After(time.Duration(ms) * time.Millisecond)
	}

	srv := &http.Server{Handler: handler()}
	go srv.Serve(l)
	select {
	case s := <-sigs:
		fmt.Println("stopping on", stopSignals[s])
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		fmt.Println("stopped")
		return nil
	case <-exitAfter:
		code, _ := strconv.Atoi(os.Getenv("TESTAPP_EXIT_CODE"))
		fmt.Println("exiting with code", code)
		os.Exit(code)
	}
	return nil
}

func handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		env := map[string]string{}
		for _, kv := range os.Environ() {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		w.Header().Set("Content-Type", "application/json")
		groups, _ := os.Getgroups()
		json.NewEncoder(w).Encode(map[string]any{
			"args": os.Args[1:], "env": env, "pid": os.Getpid(),
			"uid": os.Getuid(), "gid": os.Getgid(), "groups": groups,
		})
	})
	mux.HandleFunc("/file", func(w http.ResponseWriter, r *http.Request) {
		b, err := os.ReadFile(r.FormValue("path"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		w.Write(b)
	})
	mux.HandleFunc("/write", func(w http.ResponseWriter, r *http.Request) {
		if err := os.WriteFile(r.FormValue("path"), []byte("written\n"), 0o644); err != nil {
			http.Error(w, err.Error(), http.StatusForbidden)
			return
		}
		fmt.Fprintln(w, "written")
	})
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/print", func(w http.ResponseWriter, r *http.Request) {
		n, _ := strconv.Atoi(r.FormValue("n"))
		size, _ := strconv.Atoi(r.FormValue("size"))
		out := os.Stdout
		if r.FormValue("stream") == "stderr" {
			out = os.Stderr
		}
		printLines(out, r.FormValue("tag"), n, size)
		fmt.Fprintln(w, "printed", n)
	})
	return mux
}

// printLines writes n lines "TAG line N" padded with dots to size bytes.
func printLines(out *os.File, tag string, n, size int) {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		line := fmt.Sprintf("%s line %d", tag, i)
		if pad := size - len(line) - 1; pad > 0 {
			line += strings.Repeat(".", pad)
		}
		b.WriteString(line + "\n")
		if b.Len() > 32<<10 {
			out.WriteString(b.String())
			b.Reset()
		}
	}
	out.WriteString(b.String())
}
