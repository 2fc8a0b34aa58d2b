// Package testprom runs a real Prometheus (Debian's prometheus package,
// which scripts/setup.sh installs) for tests: in the foreground, on a free
// loopback port, with its own configuration and storage under the test's
// temporary directory, scraping the targets the test names every second.
// It is stopped when the test ends.
package testprom

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"bluegreen/internal/freeport"
	"bluegreen/internal/testwait"
)

// Target is one scrape job.
type Target struct {
	Job  string // job_name, and the job label of what it scrapes
	Addr string // host:port
	// Path is the metrics path (/metrics when empty).
	Path string
	// Token, when set, is sent as "Authorization: Bearer TOKEN" (from a
	// credentials file, as an operator would configure it).
	Token string
	// Discovery, when set, is the path on Addr of an HTTP service
	// discovery endpoint (http_sd_configs, looked at every second, with
	// Token): the targets it lists are scraped at Path, without a token.
	Discovery string
}

// Options are what the test varies.
type Options struct {
	Targets []Target
	// Interval is the scrape interval (1s when zero).
	Interval time.Duration
}

// Prometheus is a running Prometheus.
type Prometheus struct {
	// URL is its base URL, e.g. http://127.0.0.1:19090.
	URL     string
	dir     string
	logPath string
}

// attempts is how many ports are tried: a port found free can be taken by
// another test before Prometheus binds it.
const attempts = 3

// readyTimeout bounds the start; Prometheus is ready in about a second.
const readyTimeout = 60 * time.Second

// Start runs Prometheus and waits until it is ready.
func Start(t testing.TB, o Options) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("testprom: prometheus is not installed: run scripts/setup.sh (it installs Debian's prometheus package)")
	}
	if o.Interval <= 0 {
		o.Interval = time.Second
	}
	dir := t.TempDir()
	conf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(conf, []byte(config(t, dir, o)), 0o600); err != nil {
		t.Fatal(err)
	}
	for attempt := 1; ; attempt++ {
		addr := freeport.Must(t)
		p := &Prometheus{URL: "http://" + addr, dir: dir, logPath: filepath.Join(dir, fmt.Sprintf("prometheus-%d.log", attempt))}
		exited := p.run(t, bin, conf, addr)
		if p.waitReady(t, exited) {
			return p
		}
		if attempt == attempts || !strings.Contains(p.Log(), "address already in use") {
			t.Fatalf("testprom: prometheus on %s exited before it was ready; its log ends:\n%s", addr, tail(p.Log(), 30))
		}
	}
}

// config is the prometheus.yml of the run.
func config(t testing.TB, dir string, o Options) string {
	t.Helper()
	var b strings.Builder
	iv := o.Interval.String()
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\nscrape_configs:\n", iv, iv, iv)
	for i, tg := range o.Targets {
		path := tg.Path
		if path == "" {
			path = "/metrics"
		}
		fmt.Fprintf(&b, "  - job_name: %q\n    metrics_path: %q\n", tg.Job, path)
		auth := ""
		if tg.Token != "" {
			file := filepath.Join(dir, fmt.Sprintf("token-%d", i))
			if err := os.WriteFile(file, []byte(tg.Token+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			// type is the default, but Prometheus 2.42's HTTP service
			// discovery sends the bare token unless it is written out.
			auth = fmt.Sprintf("authorization:\n  type: Bearer\n  credentials_file: %q\n", file)
		}
		if tg.Discovery != "" {
			fmt.Fprintf(&b, "    http_sd_configs:\n      - url: %q\n        refresh_interval: 1s\n%s",
				"http://"+tg.Addr+tg.Discovery, indent(auth, "        "))
			continue
		}
		b.WriteString(indent(auth, "    "))
		fmt.Fprintf(&b, "    static_configs:\n      - targets: [%q]\n", tg.Addr)
	}
	return b.String()
}

// run starts Prometheus in the foreground, stops it when the test ends,
// and returns a channel closed once it has exited.
func (p *Prometheus) run(t testing.TB, bin, conf, addr string) <-chan struct{} {
	t.Helper()
	logf, err := os.Create(p.logPath)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	cmd := exec.Command(bin,
		"--config.file="+conf,
		"--storage.tsdb.path="+filepath.Join(p.dir, "data"),
		"--web.listen-address="+addr,
		"--storage.tsdb.retention.time=1h",
	)
	cmd.Stdout, cmd.Stderr = logf, logf
	// A test binary killed by its timeout leaves no Prometheus behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("testprom: starting %s: %v", bin, err)
	}
	exited := make(chan struct{})
	go func() {
		cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})
	return exited
}

// waitReady waits until GET /-/ready answers 200, or Prometheus exited
// (false).
func (p *Prometheus) waitReady(t testing.TB, exited <-chan struct{}) bool {
	t.Helper()
	gone := false
	client := &http.Client{Timeout: time.Second}
	testwait.ForOr(t, readyTimeout, "prometheus at "+p.URL+" to be ready", func() bool {
		select {
		case <-exited:
			gone = true
			return true
		default:
		}
		resp, err := client.Get(p.URL + "/-/ready")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, func() string { return tail(p.Log(), 30) })
	return !gone
}

// Log is what Prometheus wrote.
func (p *Prometheus) Log() string {
	b, _ := os.ReadFile(p.logPath)
	return string(b)
}

// Sample is one series of an instant query's answer.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// Query runs an instant query and returns a vector's samples, or a
// scalar's value as one sample without labels.
func (p *Prometheus) Query(ctx context.Context, q string) ([]Sample, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/api/v1/query?query="+url.QueryEscape(q), nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	var ans struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Type   string          `json:"resultType"`
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &ans); err != nil {
		return nil, fmt.Errorf("query %s: %v: %s", q, err, body)
	}
	if ans.Status != "success" {
		return nil, fmt.Errorf("query %s: %s", q, ans.Error)
	}
	switch ans.Data.Type {
	case "scalar":
		var pair [2]any
		if err := json.Unmarshal(ans.Data.Result, &pair); err != nil {
			return nil, err
		}
		v, err := value(pair[1])
		return []Sample{{Value: v}}, err
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(ans.Data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]Sample, len(vec))
		for i, s := range vec {
			v, err := value(s.Value[1])
			if err != nil {
				return nil, err
			}
			out[i] = Sample{Labels: s.Metric, Value: v}
		}
		return out, nil
	}
	return nil, fmt.Errorf("query %s: a %s result", q, ans.Data.Type)
}

func value(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64)
}

// WaitFor waits until the query returns at least one sample, and returns
// the samples.
func (p *Prometheus) WaitFor(t testing.TB, timeout time.Duration, q string) []Sample {
	t.Helper()
	var out []Sample
	var last error
	testwait.ForOr(t, timeout, "prometheus to answer "+q+" with data", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		out, last = p.Query(ctx, q)
		return last == nil && len(out) > 0
	}, func() string {
		return fmt.Sprintf("last error: %v; targets: %s\nlog:\n%s", last, p.targets(), tail(p.Log(), 20))
	})
	return out
}

// targets is Prometheus's account of its scrape targets, for failures.
func (p *Prometheus) targets() string {
	resp, err := http.Get(p.URL + "/api/v1/targets")
	if err != nil {
		return err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8192))
	return string(b)
}

// indent puts prefix before every line of s.
func indent(s, prefix string) string {
	if s == "" {
		return ""
	}
	lines := strings.SplitAfter(s, "\n")
	for i, l := range lines {
		if l != "" {
			lines[i] = prefix + l
		}
	}
	return strings.Join(lines, "")
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
