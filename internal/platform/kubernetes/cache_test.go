package kubernetes

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"

	"bluegreen/internal/platform"
	"bluegreen/internal/testk8s"
	"bluegreen/internal/testwait"
)

// requests counts what a platform asks the API server.
type requests struct {
	mu    sync.Mutex
	lists int // LISTs of pods
	all   int // every request but a watch
}

func (r *requests) wrap(cfg *rest.Config) {
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return roundTripFunc(func(req *http.Request) (*http.Response, error) {
			if q := req.URL.Query().Get("watch"); q != "true" && q != "1" {
				r.mu.Lock()
				r.all++
				if req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/pods") {
					r.lists++
				}
				r.mu.Unlock()
			}
			return rt.RoundTrip(req)
		})
	})
}

// take returns the counts since the last take.
func (r *requests) take() (lists, all int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	lists, all = r.lists, r.all
	r.lists, r.all = 0, 0
	return lists, all
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(req *http.Request) (*http.Response, error) { return f(req) }

// countedPlatform opens a platform of owner in ns whose requests r counts,
// closed at the test's end.
func countedPlatform(t *testing.T, cfg *rest.Config, ns, owner string, r *requests) *Platform {
	t.Helper()
	r.wrap(cfg)
	p, err := New(Options{Config: cfg, Namespace: ns, Owner: owner, StartTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// heldPod makes, behind the platform's back, the pod the platform would
// make for instance id of app, held by a scheduling gate: it never runs,
// and costs the node nothing.
func heldPod(t *testing.T, c *testk8s.Cluster, p *Platform, app, id string) *corev1.Pod {
	t.Helper()
	s := platform.InstanceSpec{ID: id, App: app, Revision: 1, Fleet: "blue", Dir: t.TempDir(),
		StopSignal: "SIGTERM", Container: &platform.Container{Image: appImage(t, c)}}
	pod, err := p.podSpec(s, 20000, metav1.OwnerReference{})
	if err != nil {
		t.Fatal(err)
	}
	pod.OwnerReferences = nil
	pod.Spec.SchedulingGates = []corev1.PodSchedulingGate{{Name: "bluegreen.test/held"}}
	pod, err = c.Client(t).CoreV1().Pods(p.ns).Create(testCtx(t), pod, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return pod
}

// waitCached waits until List of app is read from the platform's cache: it
// asks the API server nothing.
func waitCached(t *testing.T, p *Platform, r *requests, app string) {
	t.Helper()
	testwait.For(t, 30*time.Second, "List served from the cache", func() bool {
		r.take()
		if _, err := p.List(testCtx(t), app); err != nil {
			t.Fatal(err)
		}
		_, all := r.take()
		return all == 0
	})
}

// Once the cache has synced, Lists ask the API server nothing: one List per
// app per maintain cycle, at 50 apps, costs no request where it cost one
// LIST each.
func TestListFromCache(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	var r requests
	p := countedPlatform(t, c.RESTConfig(t), ns, newOwner("cache"), &r)
	const apps = 50
	for i := range apps {
		heldPod(t, c, p, fmt.Sprintf("app%02d", i), fmt.Sprintf("app%02d-1-blue-0", i))
	}
	waitCached(t, p, &r, "")

	// What one maintain cycle cost before: a LIST per app.
	r.take()
	for i := range apps {
		if _, err := p.listPods(testCtx(t), fmt.Sprintf("app%02d", i)); err != nil {
			t.Fatal(err)
		}
	}
	beforeLists, before := r.take()

	const cycles = 5
	for range cycles {
		for i := range apps {
			app := fmt.Sprintf("app%02d", i)
			ins, err := p.List(testCtx(t), app)
			if err != nil {
				t.Fatal(err)
			}
			if len(ins) != 1 || ins[0].ID != app+"-1-blue-0" {
				t.Fatalf("List(%s) = %+v; want its one held pod", app, ins)
			}
		}
	}
	lists, all := r.take()
	t.Logf("one maintain cycle of %d apps: %d requests to the API server (%d LISTs of pods) reading each app from it; %d per cycle (%d LISTs) reading from the cache, over %d cycles",
		apps, before, beforeLists, all/cycles, lists/cycles, cycles)
	if all != 0 {
		t.Errorf("%d cycles of List over %d apps made %d requests to the API server (%d LISTs of pods); want none", cycles, apps, all, lists)
	}
	if ins, err := p.List(testCtx(t), ""); err != nil || len(ins) != apps {
		t.Errorf("List of all apps: %d instances, %v; want %d", len(ins), err, apps)
	}
}

// What the platform did itself shows in the very next List, read from the
// cache: a pod it launched, running; a pod it stopped, gone.
func TestListSeesOwnWrites(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	var r requests
	p := countedPlatform(t, c.RESTConfig(t), ns, newOwner("own"), &r)
	waitCached(t, p, &r, "kube")
	for round := range 3 {
		id := fmt.Sprintf("own%d-0", round)
		in := launch(t, p, appSpec(t, c, id, nil))
		r.take()
		ins, err := p.List(testCtx(t), "kube")
		lists, _ := r.take()
		if err != nil || len(ins) != 1 || ins[0].ID != id || ins[0].State != platform.StateRunning || ins[0].Container != in.Container {
			t.Fatalf("List right after Launch of %s: %+v, %v; want it running as launched (%+v)", id, ins, err, in)
		}
		if lists != 0 {
			t.Errorf("List right after Launch asked the API server (%d LISTs); want it read from the cache", lists)
		}
		if err := p.Stop(testCtx(t), id, 0); err != nil {
			t.Fatal(err)
		}
		r.take()
		ins, err = p.List(testCtx(t), "kube")
		lists, _ = r.take()
		if err != nil || len(ins) != 0 {
			t.Fatalf("List right after Stop of %s: %+v, %v; want nothing", id, ins, err)
		}
		if lists != 0 {
			t.Errorf("List right after Stop asked the API server (%d LISTs); want it read from the cache", lists)
		}
	}
}

// A pod made or deleted behind the platform's back shows in List within a
// bounded wait, read from the cache.
func TestListSeesOthersChanges(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	var r requests
	p := countedPlatform(t, c.RESTConfig(t), ns, newOwner("others"), &r)
	waitCached(t, p, &r, "shop")
	pod := heldPod(t, c, p, "shop", "shop-1-blue-0")
	listed := func(want int) func() bool {
		return func() bool {
			ins, err := p.List(testCtx(t), "shop")
			return err == nil && len(ins) == want
		}
	}
	testwait.For(t, 30*time.Second, "List shows the pod made behind its back", listed(1))
	grace := int64(0)
	if err := c.Client(t).CoreV1().Pods(ns).Delete(testCtx(t), pod.Name, metav1.DeleteOptions{GracePeriodSeconds: &grace}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, 30*time.Second, "List shows the pod deleted behind its back gone", listed(0))
	if lists, _ := r.take(); lists != 0 {
		t.Errorf("the Lists asked the API server (%d LISTs); want them read from the cache", lists)
	}
}

// When the API server cannot be reached any more, List fails as before
// (ErrUnavailable, naming the server) instead of answering from the cache;
// once it is back, List answers again, from the cache.
func TestListWhenTheWatchBreaks(t *testing.T) {
	c := testk8s.Shared(t)
	ns := newNamespace(t, c)
	cfg := c.RESTConfig(t)
	u, err := url.Parse(cfg.Host)
	if err != nil {
		t.Fatal(err)
	}
	px := startProxy(t, u.Host)
	cfg.Host = "https://" + px.addr
	cfg.TLSClientConfig.ServerName = u.Hostname() // the certificate's
	var r requests
	p := countedPlatform(t, cfg, ns, newOwner("broken"), &r)
	heldPod(t, c, p, "shop", "shop-1-blue-0")
	waitCached(t, p, &r, "shop")

	px.stop()
	testwait.For(t, 30*time.Second, "List fails with the API server unreachable", func() bool {
		_, err := p.List(testCtx(t), "shop")
		if err != nil && (!errors.Is(err, platform.ErrUnavailable) || !strings.Contains(err.Error(), px.addr)) {
			t.Fatalf("List with the API server unreachable: %v; want ErrUnavailable naming %s", err, px.addr)
		}
		return err != nil
	})
	px.start(t)
	testwait.For(t, 30*time.Second, "List answers again", func() bool {
		ins, err := p.List(testCtx(t), "shop")
		return err == nil && len(ins) == 1
	})
	waitCached(t, p, &r, "shop")
}

// proxy forwards TCP connections to the API server until stopped; stop
// cuts those it carries.
type proxy struct {
	addr, to string
	mu       sync.Mutex
	l        net.Listener
	conns    map[net.Conn]bool
}

func startProxy(t *testing.T, to string) *proxy {
	px := &proxy{addr: "127.0.0.1:0", to: to, conns: map[net.Conn]bool{}}
	px.start(t)
	px.addr = px.l.Addr().String()
	t.Cleanup(px.stop)
	return px
}

func (px *proxy) start(t *testing.T) {
	l, err := net.Listen("tcp", px.addr)
	if err != nil {
		t.Fatal(err)
	}
	px.mu.Lock()
	px.l = l
	px.mu.Unlock()
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", px.to)
			if err != nil {
				in.Close()
				continue
			}
			px.mu.Lock()
			px.conns[in], px.conns[out] = true, true
			px.mu.Unlock()
			go func() { io.Copy(out, in); out.Close() }()
			go func() { io.Copy(in, out); in.Close() }()
		}
	}()
}

func (px *proxy) stop() {
	px.mu.Lock()
	defer px.mu.Unlock()
	px.l.Close()
	for conn := range px.conns {
		conn.Close()
	}
	clear(px.conns)
}
