package spec

import "time"

// Defaults, named so that docs/spec.md and the code can be checked against
// each other.
const (
	DefaultPlatform           = PlatformProcess
	DefaultDir                = "."
	DefaultInstances          = 1
	DefaultStopSignal         = "SIGTERM"
	DefaultStopTimeout        = 30 * time.Second
	DefaultPull               = PullMissing
	DefaultNetwork            = NetworkHost
	DefaultProduction         = "127.0.0.1:8080"
	DefaultTest               = "127.0.0.1:8081"
	DefaultHealthPath         = "/healthz"
	DefaultHealthInterval     = 2 * time.Second
	MinHealthInterval         = 10 * time.Millisecond
	DefaultHealthTimeout      = 1 * time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3
	DefaultStartupTimeout     = 2 * time.Minute
	DefaultHookTimeout        = 5 * time.Minute
	DefaultPreset             = "AllAtOnce"
	DefaultApproval           = ApprovalAuto
	DefaultApprovalTimeout    = 24 * time.Hour
	DefaultOnApprovalTimeout  = TimeoutRollback
	DefaultProgressDeadline   = 30 * time.Minute
	DefaultCheckInterval      = 10 * time.Second
	DefaultFailureLimit       = 2
	DefaultMinRequests        = 50
	DefaultInconclusiveLimit  = 5
	DefaultOnInconclusive     = InconclusiveWait
	DefaultCommandTimeout     = 30 * time.Second
	DefaultWebhookTimeout     = 5 * time.Second
	DefaultPrometheusTimeout  = 5 * time.Second
	DefaultBake               = 5 * time.Minute
	DefaultKeepBlue           = 1 * time.Hour
	DefaultDrainTimeout       = 30 * time.Second
)

// ApplyDefaults fills every setting left out with its default and expands the
// strategy preset into steps. It is the only place defaults live.
//
// For a parsed spec a value written in the file is kept even when it is zero
// (bake: 0s means no bake), and Validate judges it. For a spec built in Go,
// where nothing was written, a zero value means "use the default".
func (s *Spec) ApplyDefaults() {
	given := func(path string) bool { return s.given[path] }
	str := func(p *string, path, def string) {
		if *p == "" && !given(path) {
			*p = def
		}
	}
	num := func(p *int, path string, def int) {
		if *p == 0 && !given(path) {
			*p = def
		}
	}
	dur := func(p *Duration, path string, def time.Duration) {
		if *p == 0 && !given(path) {
			*p = Duration(def)
		}
	}

	str(&s.Platform, "platform", DefaultPlatform)
	// A stack's services have the run sections (see the end).
	if !s.IsStack() {
		if s.Platform == PlatformProcess && s.Process == nil {
			s.Process = &Process{}
		}
		s.sectionDefaults(s.top())
	}

	str(&s.Router.Production, "router.production", DefaultProduction)
	str(&s.Router.Test, "router.test", DefaultTest)

	h := &s.Health
	str(&h.Path, "health.path", DefaultHealthPath)
	dur(&h.Interval, "health.interval", DefaultHealthInterval)
	dur(&h.Timeout, "health.timeout", DefaultHealthTimeout)
	num(&h.HealthyThreshold, "health.healthy_threshold", DefaultHealthyThreshold)
	num(&h.UnhealthyThreshold, "health.unhealthy_threshold", DefaultUnhealthyThreshold)
	dur(&h.StartupTimeout, "health.startup_timeout", DefaultStartupTimeout)

	for _, ev := range s.Hooks.Events() {
		for i := range ev.Hooks {
			dur(&ev.Hooks[i].Timeout, hookPath(ev.Name, i)+".timeout", DefaultHookTimeout)
		}
	}

	st := &s.Strategy
	if st.Preset == "" && len(st.Steps) == 0 {
		st.Preset = DefaultPreset
	}
	if st.Preset != "" && len(st.Steps) == 0 {
		// An unknown preset stays in place for Validate to report.
		if steps, err := ExpandPreset(st.Preset); err == nil {
			st.Steps, st.expandedFrom, st.Preset = steps, st.Preset, ""
		}
	}
	str(&st.Approval, "strategy.approval", DefaultApproval)
	dur(&st.ApprovalTimeout, "strategy.approval_timeout", DefaultApprovalTimeout)
	str(&st.OnApprovalTimeout, "strategy.on_approval_timeout", DefaultOnApprovalTimeout)
	dur(&st.ProgressDeadline, "strategy.progress_deadline", DefaultProgressDeadline)

	c := &s.Checks
	dur(&c.Interval, "checks.interval", DefaultCheckInterval)
	num(&c.FailureLimit, "checks.failure_limit", DefaultFailureLimit)
	num(&c.MinRequests, "checks.min_requests", DefaultMinRequests)
	num(&c.InconclusiveLimit, "checks.inconclusive_limit", DefaultInconclusiveLimit)
	str(&c.OnInconclusive, "checks.on_inconclusive", DefaultOnInconclusive)
	for i, r := range c.Rules {
		path := rulePath(i)
		if r.Command != nil {
			dur(&r.Command.Timeout, path+".command.timeout", DefaultCommandTimeout)
		}
		if r.Webhook != nil {
			dur(&r.Webhook.Timeout, path+".webhook.timeout", DefaultWebhookTimeout)
		}
		if r.Judge != nil {
			judgeDefaults(r.Judge, path+".judge", given)
		}
		if r.Prometheus != nil {
			dur(&r.Prometheus.Timeout, path+".prometheus.timeout", DefaultPrometheusTimeout)
		}
	}

	dur(&s.Bake, "bake", DefaultBake)
	dur(&s.Retire.KeepBlue, "retire.keep_blue", DefaultKeepBlue)
	dur(&s.Retire.DrainTimeout, "retire.drain_timeout", DefaultDrainTimeout)
	applyNotificationDefaults(s.Notifications, s.given)

	// Last, since a service takes what it leaves out from the stack's
	// router and health, defaults included.
	if s.IsStack() {
		s.serviceDefaults()
	}
}

// sectionDefaults fills the defaults of a place's run section. Only the
// section of the place's platform gets defaults; another platform's section
// stays as written, for Validate to refuse. A missing docker section stays
// missing, so that the problem names the section.
func (s *Spec) sectionDefaults(p place) {
	given := func(path string) bool { return s.given[path] }
	str := func(v *string, path, def string) {
		if *v == "" && !given(path) {
			*v = def
		}
	}
	switch p.platform {
	case PlatformProcess:
		if p.process != nil {
			str(&p.process.Dir, p.at+"process.dir", DefaultDir)
		}
	case PlatformDocker:
		if d := p.docker; d != nil {
			str(&d.Pull, p.at+"docker.pull", DefaultPull)
			str(&d.Network, p.at+"docker.network", DefaultNetwork)
		}
	}
	if r := p.run(); r.section != "" {
		if *r.instances == 0 && !given(r.section+".instances") {
			*r.instances = DefaultInstances
		}
		str(r.stopSignal, r.section+".stop_signal", DefaultStopSignal)
		if *r.stopTimeout == 0 && !given(r.section+".stop_timeout") {
			*r.stopTimeout = Duration(DefaultStopTimeout)
		}
	}
}
