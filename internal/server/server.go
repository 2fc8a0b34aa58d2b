// Package server is `bluegreen server`: the control plane (store, engine,
// API) and the router process it drives, put together over a data
// directory. Stopping the server leaves the apps and the router running;
// the next start adopts them.
package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync/atomic"
	"time"

	"bluegreen/internal/api"
	"bluegreen/internal/artifact"
	"bluegreen/internal/auth"
	"bluegreen/internal/engine"
	"bluegreen/internal/params"
	"bluegreen/internal/platform"
	"bluegreen/internal/platform/process"
	"bluegreen/internal/platform/runas"
	"bluegreen/internal/routerproc"
	"bluegreen/internal/sampler"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
	"bluegreen/internal/web"
)

// DefaultAPIAddr is where the API listens unless told otherwise.
const DefaultAPIAddr = "127.0.0.1:7070"

// Options configure a server.
type Options struct {
	// DataDir holds everything the server keeps (see Layout).
	DataDir string
	// APIAddr is the API's host:port (DefaultAPIAddr when empty; port 0
	// picks a free one, written to DATA/server.json).
	APIAddr string
	Logger  *slog.Logger
	// RouterCommand and ShimCommand are the argv prefixes of `bluegreen
	// router` and `bluegreen instance-shim` (default: this executable).
	RouterCommand []string
	ShimCommand   []string
	// ShimPerFleet has one shim watch all the instances of a fleet on the
	// process platform (process.Options.ShimPerFleet).
	ShimPerFleet bool
	// Tick is how often active deployments look at their fleets (engine
	// default when zero).
	Tick time.Duration
	// RunAs is who apps' instances and hooks run as: runas.Dynamic (a user
	// of each app's own), "root", a user name or a numeric uid; empty for
	// the default (dynamic when the server runs as root, else the server's
	// own user). AllowRunAs lists the users an app's run_as may name.
	RunAs      string
	AllowRunAs []string
	// Retention is what is kept of revisions no longer run (the engine's
	// default when zero); PruneEvery is how often it is applied (1h when
	// zero).
	Retention  engine.Retention
	PruneEvery time.Duration
	// DockerHost is the Docker engine apps with platform: docker run on
	// (empty: DOCKER_HOST, else the Docker default).
	DockerHost string
	// Kubernetes is the cluster apps with platform: kubernetes run on.
	Kubernetes Kubernetes
	// Notify configures outbound notifications.
	Notify Notify
	// Prometheus is the base URL of the Prometheus that prometheus check
	// rules query when their spec names none (empty: none).
	Prometheus string
	// ACME are the defaults of apps whose router.tls asks for acme.
	ACME ACME
	// ACMEPoll is how often the routing table is looked at for hosts that
	// need a certificate (10s when zero).
	ACMEPoll time.Duration
}

// Layout of the data directory.
const (
	bundlesDir   = "bundles"          // content-addressed bundles
	revisionsDir = runas.RevisionsDir // unpacked revisions, APP/GENERATION
	instancesDir = "instances"        // the process platform's records and logs
	routerDir    = "router"           // the router's socket, route file and log
	infoFile     = "server.json"
)

// Info is what a running server writes to DATA/server.json, so that local
// commands find it. API is empty while the server is starting.
type Info struct {
	API string `json:"api"`
	PID int    `json:"pid"`
}

// writeInfo replaces DATA/server.json in one step, so a reader never sees
// half of it.
func writeInfo(dir string, in Info) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, infoFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", infoFile, err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, infoFile)); err != nil {
		return fmt.Errorf("writing %s: %w", infoFile, err)
	}
	return nil
}

// ReadInfo reads DATA/server.json.
func ReadInfo(dataDir string) (Info, error) {
	var in Info
	b, err := os.ReadFile(filepath.Join(dataDir, infoFile))
	if err != nil {
		return in, err
	}
	return in, json.Unmarshal(b, &in)
}

// Run runs the server until ctx ends, then stops the API and the engine.
// The router and the instances keep running.
func Run(ctx context.Context, o Options) (err error) {
	log := o.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if o.DataDir == "" {
		return errors.New("server: no data directory")
	}
	if o.APIAddr == "" {
		o.APIAddr = DefaultAPIAddr
	}
	if _, _, err := net.SplitHostPort(o.APIAddr); err != nil {
		return fmt.Errorf("--api %q: want host:port, e.g. 127.0.0.1:7070: %w", o.APIAddr, err)
	}
	if o.Prometheus != "" {
		if err := spec.CheckPrometheusURL(o.Prometheus); err != nil {
			return fmt.Errorf("--prometheus: %w", err)
		}
	}
	if abs, err := filepath.Abs(o.DataDir); err == nil {
		o.DataDir = abs
	}
	// Who apps run as is settled first: a server that cannot arrange it
	// refuses to start rather than run them as someone else.
	users, err := runas.New(runas.Config{RunAs: o.RunAs, Allow: o.AllowRunAs, DataDir: o.DataDir})
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("creating the data directory: %w", err)
	}
	lock, err := lockDataDir(o.DataDir)
	if err != nil {
		return err
	}
	defer lock.Close()
	// Commands that find server.json without an address wait for it: a
	// script may start the server and use it on the next line.
	if err := writeInfo(o.DataDir, Info{PID: os.Getpid()}); err != nil {
		return err
	}
	defer func() {
		if err != nil {
			// A server that did not start leaves no address behind.
			if in, rerr := ReadInfo(o.DataDir); rerr == nil && in.PID == os.Getpid() {
				_ = os.Remove(filepath.Join(o.DataDir, infoFile))
			}
		}
	}()
	// The API's address first: a port in use ends the start before
	// anything (the router) is started.
	tcp, err := net.Listen("tcp", o.APIAddr)
	if err != nil {
		return fmt.Errorf("API listener: %w (give another address with --api)", err)
	}
	defer tcp.Close()
	// Closed until PrepareDataDir has set the mode of everything in it.
	if err := os.Chmod(o.DataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	if err := users.CheckReach(); err != nil {
		return err
	}
	st, err := store.Open(ctx, o.DataDir, store.Options{})
	if err != nil {
		return err
	}
	defer st.Close()
	ps, err := params.Open(ctx, st)
	if err != nil {
		return err
	}
	tokenPath := filepath.Join(o.DataDir, auth.AdminTokenFile)
	created, err := auth.EnsureAdmin(ctx, st, tokenPath)
	if err != nil {
		return fmt.Errorf("creating the first admin token: %w", err)
	}
	if created {
		log.Info("admin token written to "+tokenPath+"; keep it secret", "path", tokenPath)
	}
	secrets := serverSecrets(tokenPath)
	bundles, err := artifact.New(filepath.Join(o.DataDir, bundlesDir), artifact.Options{})
	if err != nil {
		return err
	}
	redact := outputRedactor(ps, secrets, log)
	procs, err := process.New(process.Options{StateDir: filepath.Join(o.DataDir, instancesDir), Shim: o.ShimCommand,
		ShimPerFleet: o.ShimPerFleet, Logger: log.With("part", "platform"), Redact: redact})
	if err != nil {
		return err
	}
	defer procs.Close()
	containers, err := openDocker(ctx, o.DataDir, o.DockerHost, log.With("part", "docker"), redact)
	if err != nil {
		return err
	}
	defer containers.Close()
	plats := []platform.Platform{procs, containers}
	pods, err := openKubernetes(ctx, o.DataDir, o.Kubernetes, log.With("part", "kubernetes"), redact)
	if err != nil {
		return err
	}
	var services engine.ServiceSwitcher
	if pods != nil {
		defer pods.Close()
		plats = append(plats, pods)
		services = pods
	}
	plat := platform.NewSet(plats...)

	// A router restarted from its route file has the last table pushed;
	// forgetting what was pushed makes the next push whole again. The watch
	// loop may call this before traffic exists, hence the atomic.
	var trafficRef atomic.Pointer[engine.RouterTraffic]
	sup, err := routerproc.Start(ctx, routerproc.Options{
		Dir: filepath.Join(o.DataDir, routerDir), Command: o.RouterCommand, Logger: log.With("part", "router"),
		UpgradeAdopted: true,
		OnRestart: func() {
			if t := trafficRef.Load(); t != nil {
				t.Forget()
			}
		},
	})
	if err != nil {
		return err
	}
	defer sup.Close()
	traffic := engine.NewRouterTraffic(sup)
	trafficRef.Store(traffic)
	if sup.Adopted() {
		log.Info("adopted the running router", "pid", sup.Pid(), "admin", sup.Admin())
	} else {
		log.Info("started the router", "pid", sup.Pid(), "admin", sup.Admin())
	}

	if err := users.PrepareDataDir(); err != nil {
		return err
	}
	if users.Isolated() {
		log.Info("apps and hooks run as " + users.Describe())
	} else {
		log.Warn("apps and hooks run as " + users.Describe())
	}
	notifier, err := startNotifier(ctx, o, st, ps, log.With("part", "notify"))
	if err != nil {
		return err
	}
	defer notifier.Close()
	mets := newMetrics(st, sup)
	certMgr, stopCerts, err := startCerts(ctx, o, sup, st, log.With("part", "certs"))
	if err != nil {
		return err
	}
	defer stopCerts()
	eng, err := engine.New(engine.Options{
		Store: st, Params: ps, Bundles: bundles, Platform: plat, Traffic: traffic, Services: services,
		RevisionsDir: filepath.Join(o.DataDir, revisionsDir), Logger: log.With("part", "engine"), Tick: o.Tick,
		RunAs: users, Secrets: secrets, Metrics: mets, Prometheus: o.Prometheus, CertDir: certMgr.CertDir(),
	})
	if err != nil {
		return err
	}
	if err := eng.Start(ctx); err != nil {
		return err
	}
	defer eng.Close()
	stopPruning := prune(ctx, eng, o, log.With("part", "retention"))
	defer stopPruning()

	budget, err := budgetDescriptors()
	if err != nil {
		return err
	}
	if budget.tight {
		log.Warn("the open-files limit leaves the engine few descriptors for hooks, instances and the store; raise it (ulimit -n, LimitNOFILE=)", budget.logAttrs()...)
	}
	ln := newLimitListener(tcp, budget.maxConns, log.With("part", "api"))
	addr := ln.Addr().String()
	if !isLoopback(ln.Addr()) {
		// The API speaks plain HTTP: anyone on the path can read the
		// bearer tokens it carries.
		log.Warn("the API listens on a non-loopback address without TLS: tokens cross the network in clear; put a TLS-terminating proxy in front or listen on 127.0.0.1", "api", addr)
	}
	if err := writeInfo(o.DataDir, Info{API: addr, PID: os.Getpid()}); err != nil {
		ln.Close()
		return err
	}
	stopStreams := make(chan struct{})
	tokens := auth.New(st, nil)
	sessions := web.NewSessions(st, nil, 0, 0)
	// One limit on failed authentications, for the login form and the API.
	failures := auth.NewLimiter(0, 0, nil)
	samples := sampler.New(sampler.Options{
		Apps: func(ctx context.Context) ([]string, error) {
			apps, err := st.ListApps(ctx)
			names := make([]string, 0, len(apps))
			for _, a := range apps {
				names = append(names, a.Name)
			}
			return names, err
		},
		Fleets: eng.Fleets, AllFleets: eng.AllFleets, Logger: log.With("part", "sampler"),
	})
	sctx, stopSampler := context.WithCancel(ctx)
	samplerDone := make(chan struct{})
	go func() { defer close(samplerDone); samples.Run(sctx) }()
	defer func() { stopSampler(); <-samplerDone }()
	dash, err := web.New(web.Options{Store: st, Tokens: tokens, Sessions: sessions, Logger: log.With("part", "web"), Failures: failures})
	if err != nil {
		ln.Close()
		return err
	}
	// One listener: the API under /api/, the dashboard everywhere else.
	mux := http.NewServeMux()
	mux.Handle("/api/", (&api.Server{Engine: eng, Store: st, Bundles: bundles, Platform: plat, Params: ps,
		Tokens: tokens, Logger: log, Stop: stopStreams, Sessions: sessions, Samples: samples, Failures: failures, Metrics: mets,
		Certificates: certificateStatus(certMgr, sup), UpgradeRouter: upgradeRouter(sup)}).Handler())
	mux.Handle("/", dash.Handler())
	srv := &http.Server{
		Handler:           deadlines(mux),
		ReadHeaderTimeout: readHeaderTimeout,
		IdleTimeout:       idleTimeout,
		MaxHeaderBytes:    maxHeaderBytes,
		ConnState:         ln.connState,
		ErrorLog:          slog.NewLogLogger(log.With("part", "api").Handler(), slog.LevelWarn),
	}
	srv.RegisterOnShutdown(func() { close(stopStreams) })
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("API limits", append(budget.logAttrs(), "max_uploads", api.DefaultMaxUploads)...)
	log.Info("server ready", "api", addr, "dashboard", "http://"+addr+"/", "data", o.DataDir)

	select {
	case <-ctx.Done():
	case err := <-errc:
		return fmt.Errorf("API server: %w", err)
	}
	log.Info("stopping; apps and the router keep running")
	if in, err := ReadInfo(o.DataDir); err == nil && in.PID == os.Getpid() {
		_ = os.Remove(filepath.Join(o.DataDir, infoFile))
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(sctx)
	return nil
}

// isLoopback reports whether the API's listener is reachable from this
// machine only.
func isLoopback(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// prune applies the retention at start and then every PruneEvery, until
// the returned func is called.
func prune(ctx context.Context, eng *engine.Engine, o Options, log *slog.Logger) (stop func()) {
	r := o.Retention
	if r.Revisions == 0 && r.For == 0 {
		r = engine.DefaultRetention
	}
	every := o.PruneEvery
	if every <= 0 {
		every = time.Hour
	}
	log.Info("retention", "revisions", r.Revisions, "for", r.For.String(), "every", every.String())
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if _, err := eng.Prune(ctx, r); err != nil && ctx.Err() == nil {
				log.Error("pruning", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
