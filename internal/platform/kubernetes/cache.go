package kubernetes

import (
	"context"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"log/slog"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/informers/internalinterfaces"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"
	"k8s.io/klog/v2"
)

// cacheWait bounds how long List waits for the cache to show what the
// platform itself did (a pod it created, started or deleted) before it
// asks the API server instead.
const cacheWait = 3 * time.Second

// byApp indexes the cached pods by their app label.
const byApp = "app"

// podCache holds this owner's pods as one shared informer sees them: a
// LIST, then a WATCH that keeps it current, in the platform's namespace,
// of the pods with the owner's label and the instance role alone. List
// reads it instead of asking the API server each time, but only while it
// can be trusted:
//
//   - it has synced, and the informer's watch of the API server is open
//     now (a broken watch, an API server down, and List goes to the API
//     server, which fails with ErrUnavailable rather than answer stale);
//   - it shows at least what the platform itself saw of the app's pods:
//     each pod state Launch or Stop read or wrote (created, started,
//     deleted) raises the resource version the cache must reach before
//     List of that app may read it. The cache's own resource version (its
//     last event, list or bookmark) says how far it has got; versions of
//     one resource compare as numbers.
//
// The informer starts at the first List and stops at Close.
type podCache struct {
	cs    kubernetes.Interface // the informer's: its transport counts open watches
	ns    string
	sel   string
	log   *slog.Logger
	open  atomic.Int32 // the informer's watch streams now open
	start sync.Once
	down  atomic.Bool // the watch failed and has not opened since

	mu       sync.Mutex
	informer cache.SharedIndexInformer // nil until started
	cancel   context.CancelFunc
	done     chan struct{} // closed once the informer has stopped
	closed   bool
	want     map[string]string // app → the resource version List must see
	missed   map[string]bool   // apps whose want the cache failed to reach in time
	changed  chan struct{}     // closed (and replaced) at each event of the informer
}

// newPodCache returns the cache of the pods selector selects in namespace
// ns, its informer to run on a client of cfg.
func newPodCache(cfg *rest.Config, ns, selector string, log *slog.Logger) (*podCache, error) {
	c := &podCache{ns: ns, sel: selector, log: log,
		want: map[string]string{}, missed: map[string]bool{}, changed: make(chan struct{})}
	cfg = rest.CopyConfig(cfg)
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper {
		return watchCounter{rt: rt, open: &c.open, down: &c.down, log: log}
	})
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		return nil, err
	}
	c.cs = cs
	return c, nil
}

// run starts the informer, once, unless the cache is closed.
func (c *podCache) run() {
	c.start.Do(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.closed {
			return
		}
		// The informer's own messages (a failed watch, its retries) go to
		// the platform's log, not to klog's standard error.
		ctx, cancel := context.WithCancel(klog.NewContext(context.Background(), logr.FromSlogHandler(c.log.Handler())))
		sel := c.sel
		// One informer of one type: client-go's informer factory would
		// link in the informers of every API group.
		inf := coreinformers.NewPodInformerWithOptions(c.cs, c.ns, internalinterfaces.InformerOptions{
			TweakListOptions: func(o *metav1.ListOptions) { o.LabelSelector = sel },
			Indexers: cache.Indexers{byApp: func(obj any) ([]string, error) {
				if pod, ok := obj.(*corev1.Pod); ok {
					return []string{pod.Labels[labelApp]}, nil
				}
				return nil, nil
			}},
		})
		_ = inf.SetTransform(func(obj any) (any, error) {
			// Nobody reads them: keep a fleet's pods small in memory.
			if a, err := meta.Accessor(obj); err == nil {
				a.SetManagedFields(nil)
			}
			return obj, nil
		})
		_, _ = inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
			AddFunc:    func(any) { c.notify() },
			UpdateFunc: func(any, any) { c.notify() },
			DeleteFunc: func(any) { c.notify() },
		})
		_ = inf.SetWatchErrorHandlerWithContext(func(ctx context.Context, _ *cache.Reflector, err error) {
			if c.down.CompareAndSwap(false, true) {
				c.log.Warn("the watch of pods failed: List asks the API server until it is back", "err", err)
			} else {
				c.log.Debug("the watch of pods failed again", "err", err)
			}
		})
		c.done = make(chan struct{})
		go func() {
			defer close(c.done)
			inf.RunWithContext(ctx)
		}()
		c.informer, c.cancel = inf, cancel
	})
}

// notify wakes the Lists waiting for the cache.
func (c *podCache) notify() {
	c.mu.Lock()
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

// close stops the informer and waits for it.
func (c *podCache) close() {
	c.mu.Lock()
	c.closed = true
	cancel, done := c.cancel, c.done
	c.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
}

// saw records a state of one of the platform's pods that the platform
// itself read or wrote: List of its app shows that state or a later one.
func (c *podCache) saw(pod *corev1.Pod) {
	if pod == nil || pod.ResourceVersion == "" {
		return
	}
	app := pod.Labels[labelApp]
	c.mu.Lock()
	defer c.mu.Unlock()
	if cur, ok := c.want[app]; ok {
		if n, err := resourceversion.CompareResourceVersion(cur, pod.ResourceVersion); err == nil && n >= 0 {
			return
		}
	}
	c.want[app] = pod.ResourceVersion
	delete(c.missed, app)
}

// live reports whether the cache may be read at all: synced, and its
// watch open.
func (c *podCache) live() bool {
	c.mu.Lock()
	inf, closed := c.informer, c.closed
	c.mu.Unlock()
	return !closed && inf != nil && inf.HasSynced() && c.open.Load() > 0
}

// pods returns the cached pods of app (all when app is ""), or false when
// the cache cannot answer and List must ask the API server: not synced,
// its watch not open, or behind what the platform saw of the app's pods
// for longer than cacheWait.
func (c *podCache) pods(ctx context.Context, app string) ([]*corev1.Pod, bool) {
	c.run()
	var timeout <-chan time.Time
	for {
		if !c.live() {
			return nil, false
		}
		c.mu.Lock()
		behind, gaveUp := c.behindLocked(app)
		changed := c.changed
		c.mu.Unlock()
		if len(behind) == 0 {
			break
		}
		if gaveUp {
			return nil, false
		}
		if timeout == nil {
			t := time.NewTimer(cacheWait)
			defer t.Stop()
			timeout = t.C
		}
		select {
		case <-changed:
		case <-time.After(50 * time.Millisecond):
			// A list or a bookmark moves the cache on without an event.
		case <-timeout:
			// Ask the API server, and do not make the next List of
			// these apps wait again until the cache has caught up.
			c.mu.Lock()
			for _, a := range behind {
				c.missed[a] = true
			}
			c.mu.Unlock()
			return nil, false
		case <-ctx.Done():
			return nil, false
		}
	}
	var objs []any
	if app == "" {
		objs = c.informer.GetIndexer().List()
	} else {
		objs, _ = c.informer.GetIndexer().ByIndex(byApp, app)
	}
	out := make([]*corev1.Pod, 0, len(objs))
	for _, obj := range objs {
		if pod, ok := obj.(*corev1.Pod); ok {
			out = append(out, pod)
		}
	}
	return out, true
}

// behindLocked returns the apps (app alone, unless "") whose pods the
// cache does not yet show as the platform saw them, forgetting those it
// has caught up with, and whether a List already waited for one of them
// in vain.
func (c *podCache) behindLocked(app string) (behind []string, gaveUp bool) {
	if len(c.want) == 0 {
		return nil, false
	}
	have := c.informer.GetIndexer().LastStoreSyncResourceVersion()
	for a, rv := range c.want {
		if app != "" && a != app {
			continue
		}
		if n, err := resourceversion.CompareResourceVersion(have, rv); err == nil && n >= 0 {
			delete(c.want, a)
			delete(c.missed, a)
			continue
		}
		behind = append(behind, a)
		// A store that tells no version (client-go's AtomicFIFO switched
		// off) can never be shown to be current.
		gaveUp = gaveUp || c.missed[a] || have == ""
	}
	return behind, gaveUp
}

// watchCounter counts the informer's watch streams that are open: a
// request with watch=true that the API server answered, until its body
// ends.
type watchCounter struct {
	rt   http.RoundTripper
	open *atomic.Int32
	down *atomic.Bool
	log  *slog.Logger
}

func (w watchCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := w.rt.RoundTrip(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		return resp, err
	}
	if q := req.URL.Query().Get("watch"); q != "true" && q != "1" {
		return resp, err
	}
	w.open.Add(1)
	if w.down.CompareAndSwap(true, false) {
		w.log.Info("the watch of pods is open again")
	}
	resp.Body = &watchBody{ReadCloser: resp.Body, open: w.open}
	return resp, nil
}

// watchBody is a watch stream's body: it counts itself closed when the
// stream ends, however it ends.
type watchBody struct {
	io.ReadCloser
	open *atomic.Int32
	done atomic.Bool
}

func (b *watchBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil {
		b.end()
	}
	return n, err
}

func (b *watchBody) Close() error {
	b.end()
	return b.ReadCloser.Close()
}

func (b *watchBody) end() {
	if b.done.CompareAndSwap(false, true) {
		b.open.Add(-1)
	}
}
