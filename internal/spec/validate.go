package spec

import (
	"fmt"
	"net"
	"net/url"
	"path"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// MaxInstances bounds the instances of a fleet: each instance is a local
// process or container with its own port, and a typo like 1000 should not
// start a thousand.
const MaxInstances = 100

var (
	appName    = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	envName    = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	paramName  = regexp.MustCompile(`^(/[A-Za-z0-9_.-]+)+$`)
	hostName   = regexp.MustCompile(`^(\*\.)?[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	headerName = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+.^_|~-]+$`)
	userName   = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}\$?$`)
)

// StopSignals are the signals stop_signal may name.
var StopSignals = []string{"SIGTERM", "SIGINT", "SIGQUIT", "SIGHUP", "SIGUSR1", "SIGUSR2", "SIGWINCH"}

// Validate checks every rule of the spec and returns an *Errors listing all
// problems, or nil. It expects ApplyDefaults to have run.
func (s *Spec) Validate() error {
	c := &collector{probs: s.problems()}
	return c.err()
}

// problems returns what Validate reports, unsorted and unbounded.
func (s *Spec) problems() []Problem {
	c := &collector{file: s.file, pos: s.pos}
	s.validateApp(c)
	s.validateSections(c)
	s.validateProcess(c)
	s.validateDocker(c)
	s.validateKubernetes(c)
	s.validateRouter(c)
	s.validateTLS(c)
	s.validateHealth(c)
	s.validateHooks(c)
	s.validateStrategy(c)
	s.validateChecks(c)
	s.validateServices(c)
	positive(c, "bake", s.Bake, true)
	positive(c, "retire.keep_blue", s.Retire.KeepBlue, true)
	positive(c, "retire.drain_timeout", s.Retire.DrainTimeout, true)
	s.validateEdgeOps(c)
	s.validateParams(c)
	s.validateNotifications(c)
	if s.RunAs != "" && !userName.MatchString(s.RunAs) {
		c.add("run_as", "bad user %s: want a user name (letters, digits, '_', '.', '-', at most 32) or a numeric user ID", quote(s.RunAs))
	}
	return c.probs
}

// positive reports a duration of zero unless zero is allowed. Negative
// durations are refused by the decoder already.
func positive(c *collector, path string, d Duration, zeroOK bool) {
	switch {
	case d < 0:
		c.add(path, "must not be negative, got %s", d)
	case d == 0 && !zeroOK:
		c.add(path, "must be longer than 0s")
	}
}

func atLeast(c *collector, path string, v, low int) {
	if v < low {
		c.add(path, "must be at least %d, got %d", low, v)
	}
}

func oneOf(c *collector, path, v string, choices ...string) {
	for _, ch := range choices {
		if v == ch {
			return
		}
	}
	c.add(path, "must be %s, got %s%s", strings.Join(choices, " or "), quote(v), suggest(v, choices))
}

func (s *Spec) validateApp(c *collector) {
	switch {
	case s.App == "":
		c.add("app", "is required: the app's name, like shop")
	case !appName.MatchString(s.App):
		c.add("app", "bad app name %s: want 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'", quote(s.App))
	}
	switch s.Platform {
	case PlatformProcess, PlatformDocker, PlatformKubernetes:
	default:
		c.add("platform", "unknown platform %s%s; want %q, %q or %q", quote(s.Platform), suggest(s.Platform, []string{PlatformProcess, PlatformDocker, PlatformKubernetes}), PlatformProcess, PlatformDocker, PlatformKubernetes)
	}
}

// validateSections refuses the section of a platform the spec does not run
// on: it would be silently ignored, and is most likely a platform: line
// forgotten or left behind.
func (s *Spec) validateSections(c *collector) {
	for _, p := range s.places() {
		s.validateSectionsAt(c, p)
	}
}

func (s *Spec) validateSectionsAt(c *collector, p place) {
	if p.platform != PlatformProcess && p.platform != PlatformDocker && p.platform != PlatformKubernetes {
		return // an unknown platform is reported once, at platform:
	}
	platform := p.platform
	if !s.given[p.at+"platform"] && s.pos != nil {
		platform += ", the default"
		if p.at != "" && s.given["platform"] {
			platform = p.platform + ", the stack's"
		}
	}
	if p.process != nil && p.platform != PlatformProcess {
		c.add(p.at+"process", "given, but platform is %s (remove the section, or set platform: %s)", platform, PlatformProcess)
	}
	if p.docker != nil && p.platform != PlatformDocker {
		c.add(p.at+"docker", "given, but platform is %s (set platform: %s to use this section, or remove it)", platform, PlatformDocker)
	}
	if p.kubernetes != nil && p.platform != PlatformKubernetes {
		c.add(p.at+"kubernetes", "given, but platform is %s (set platform: %s to use this section, or remove it)", platform, PlatformKubernetes)
	}
}

func (s *Spec) validateProcess(c *collector) {
	for _, p := range s.places() {
		validateProcessAt(c, p)
	}
}

func validateProcessAt(c *collector, pl place) {
	p := pl.process
	if pl.platform != PlatformProcess || p == nil {
		return
	}
	at := func(key string) string { return pl.at + "process." + key }
	if len(p.Command) == 0 {
		c.add(at("command"), "is required: the program and its arguments, like [\"./shop\", \"--listen\", \"127.0.0.1:${PORT}\"]")
	} else if strings.TrimSpace(p.Command[0]) == "" {
		c.add(at("command[0]"), "the program name is empty")
	}
	argv(c, at("command"), p.Command, p.Env)
	if path.IsAbs(p.Dir) || p.Dir == ".." || strings.HasPrefix(path.Clean(p.Dir), "../") {
		c.add(at("dir"), "must be a path inside the bundle, got %s", quote(p.Dir))
	}
	pl.run().validate(c)
}

// envProblem says what is wrong with an env variable name the spec sets.
func envProblem(k string) string {
	switch {
	case !envName.MatchString(k):
		return fmt.Sprintf("bad env name %s: want letters, digits and '_', not starting with a digit", quote(k))
	case k == "PORT":
		return "PORT is set by bluegreen for each instance"
	case strings.HasPrefix(k, "BG_"):
		return "names starting with BG_ are reserved for bluegreen"
	}
	return ""
}

func (s *Spec) validateRouter(c *collector) {
	r := s.Router
	prod, okProd := listener(c, "router.production", r.Production)
	test, okTest := listener(c, "router.test", r.Test)
	if okProd && okTest && prod.port == test.port && (prod.host == test.host || prod.wildcard() || test.wildcard()) {
		c.add("router.test", "the test listener %s must differ from the production listener %s", r.Test, r.Production)
	}
	seen := map[string]int{}
	for i, h := range r.Hosts {
		hp := fmt.Sprintf("router.hosts[%d]", i)
		if !hostName.MatchString(h) || len(h) > 253 {
			c.add(hp, "bad host name %s: want a DNS name like shop.example.com, optionally starting with *.", quote(h))
			continue
		}
		key := strings.ToLower(h)
		if j, dup := seen[key]; dup {
			c.add(hp, "host %s is listed twice (also router.hosts[%d])", quote(h), j)
		}
		seen[key] = i
	}
	if r.PreviewHeader != "" && !headerName.MatchString(r.PreviewHeader) {
		c.add("router.preview_header", "bad header name %s", quote(r.PreviewHeader))
	}
	if n := r.PreviewSecretParam; n != "" {
		switch {
		case r.PreviewHeader == "":
			c.add("router.preview_secret_param", "set without router.preview_header (set the header too, or remove it)")
		case !slices.Contains(s.Params, n):
			c.add("router.preview_secret_param", "%s is not one of the spec's params (add it to params:, so that each revision pins its version)", quote(n))
		}
	}
}

type hostPort struct {
	host string
	port int
}

func (h hostPort) wildcard() bool { return h.host == "" || h.host == "0.0.0.0" || h.host == "::" }

func listener(c *collector, p, addr string) (hostPort, bool) {
	host, portStr, err := net.SplitHostPort(addr)
	if err != nil {
		c.add(p, "want host:port like 127.0.0.1:8080, got %s", quote(addr))
		return hostPort{}, false
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 1 || port > 65535 {
		c.add(p, "bad port %s in %s: want 1 to 65535", quote(portStr), quote(addr))
		return hostPort{}, false
	}
	if host != "" && net.ParseIP(host) == nil && (!hostName.MatchString(host) || strings.HasPrefix(host, "*")) {
		c.add(p, "bad host %s in %s", quote(host), quote(addr))
		return hostPort{}, false
	}
	return hostPort{host, port}, true
}

func (s *Spec) validateHealth(c *collector) { validateHealthAt(c, "", s.Health) }

// validateHealthAt checks a health section whose key path starts with at.
func validateHealthAt(c *collector, at string, h Health) {
	k := func(key string) string { return at + "health." + key }
	if !strings.HasPrefix(h.Path, "/") || strings.ContainsAny(h.Path, " \t\r\n") {
		c.add(k("path"), "want a URL path starting with /, like /healthz, got %s", quote(h.Path))
	}
	positive(c, k("interval"), h.Interval, false)
	if h.Interval > 0 && h.Interval.D() < MinHealthInterval {
		// The router refuses faster checks: the table would not apply.
		c.add(k("interval"), "%s is shorter than %s, the fastest check the router runs", h.Interval, Duration(MinHealthInterval))
	}
	positive(c, k("timeout"), h.Timeout, false)
	if h.Timeout > h.Interval && h.Interval > 0 {
		c.add(k("timeout"), "%s is longer than health.interval %s; a check would still run when the next one starts", h.Timeout, h.Interval)
	}
	atLeast(c, k("healthy_threshold"), h.HealthyThreshold, 1)
	atLeast(c, k("unhealthy_threshold"), h.UnhealthyThreshold, 1)
	positive(c, k("startup_timeout"), h.StartupTimeout, false)
}

func hookPath(event string, i int) string { return fmt.Sprintf("hooks.%s[%d]", event, i) }

func (s *Spec) validateHooks(c *collector) { validateHooksAt(c, "", &s.Hooks) }

// validateHooksAt checks a hooks section whose key path starts with at.
func validateHooksAt(c *collector, at string, hooks *Hooks) {
	for _, ev := range hooks.Events() {
		for i, h := range ev.Hooks {
			p := at + hookPath(ev.Name, i)
			if strings.TrimSpace(h.Run) == "" {
				c.add(p+".run", "is required: the command to run, like ./hooks/smoke.sh")
			}
			positive(c, p+".timeout", h.Timeout, false)
		}
	}
}

func (s *Spec) validateParams(c *collector) {
	byEnv := map[string]int{}
	for i, name := range s.Params {
		p := fmt.Sprintf("params[%d]", i)
		if !paramName.MatchString(name) {
			c.add(p, "bad parameter name %s: want /segments/like/THIS of letters, digits, '_', '.' and '-'", quote(name))
			continue
		}
		env := name[strings.LastIndexByte(name, '/')+1:]
		if msg := envProblem(env); msg != "" {
			c.add(p, "parameter %s is injected as env %s: %s", quote(name), quote(env), msg)
			continue
		}
		if j, dup := byEnv[env]; dup {
			c.add(p, "parameter %s and %s would both set env %s", quote(name), quote(s.Params[j]), env)
			continue
		}
		byEnv[env] = i
		for _, pl := range s.places() {
			if r := pl.run(); r.section != "" {
				if _, clash := r.env[env]; clash {
					c.add(p, "parameter %s sets env %s, which %s.env sets too", quote(name), env, r.section)
				}
			}
		}
	}
}

func (s *Spec) validateChecks(c *collector) {
	ch := s.Checks
	positive(c, "checks.interval", ch.Interval, false)
	atLeast(c, "checks.failure_limit", ch.FailureLimit, 1)
	atLeast(c, "checks.min_requests", ch.MinRequests, 0)
	atLeast(c, "checks.inconclusive_limit", ch.InconclusiveLimit, 1)
	oneOf(c, "checks.on_inconclusive", ch.OnInconclusive, InconclusiveWait, InconclusiveRollback)
	for i, r := range ch.Rules {
		validateRule(c, rulePath(i), r)
	}
	validatePrometheusURL(c, "checks.prometheus", ch.Prometheus)
}

func rulePath(i int) string { return fmt.Sprintf("checks.rules[%d]", i) }

// ruleKinds are the keys of Rule, for messages.
var ruleKinds = fieldsOf(reflect.TypeFor[Rule]()).names

func validateRule(c *collector, p string, r Rule) {
	var kinds []string
	for kind, set := range map[string]bool{
		"error_rate": r.ErrorRate != nil, "latency_p50": r.LatencyP50 != nil, "latency_p95": r.LatencyP95 != nil,
		"latency_p99": r.LatencyP99 != nil, "command": r.Command != nil, "webhook": r.Webhook != nil,
		"prometheus": r.Prometheus != nil, "judge": r.Judge != nil,
	} {
		if set {
			kinds = append(kinds, kind)
		}
	}
	sort.Strings(kinds)
	if len(kinds) != 1 {
		if len(kinds) == 0 {
			c.add(p, "a rule needs one of %s", strings.Join(ruleKinds, ", "))
		} else {
			c.add(p, "a rule has one kind, found %s; write each as its own list item", strings.Join(kinds, " and "))
		}
		return
	}
	switch {
	case r.ErrorRate != nil:
		rp := p + ".error_rate"
		if r.ErrorRate.Max == nil && r.ErrorRate.MaxVsBlue == nil {
			c.add(rp, "set max (a share of requests, 0 to 1), max_vs_blue (a ratio), or both")
		}
		if m := r.ErrorRate.Max; m != nil && !(*m >= 0 && *m <= 1) {
			c.add(rp+".max", "must be between 0 and 1 (a share of requests, 0.01 is 1%%), got %v", *m)
		}
		ratio(c, rp+".max_vs_blue", r.ErrorRate.MaxVsBlue)
	case r.Command != nil:
		if strings.TrimSpace(r.Command.Run) == "" {
			c.add(p+".command.run", "is required: the command to run, like ./hooks/check.sh")
		}
		positive(c, p+".command.timeout", r.Command.Timeout, false)
	case r.Webhook != nil:
		u, err := url.Parse(r.Webhook.URL)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			c.add(p+".webhook.url", "want an http:// or https:// URL, got %s", quote(r.Webhook.URL))
		}
		positive(c, p+".webhook.timeout", r.Webhook.Timeout, false)
	case r.Judge != nil:
		validateJudge(c, p+".judge", r.Judge)
	case r.Prometheus != nil:
		validatePrometheusRule(c, p+".prometheus", r.Prometheus)
	default:
		kind, l := kinds[0], r.LatencyP50
		if r.LatencyP95 != nil {
			l = r.LatencyP95
		}
		if r.LatencyP99 != nil {
			l = r.LatencyP99
		}
		lp := p + "." + kind
		if l.Max == nil && l.MaxVsBlue == nil {
			c.add(lp, "set max (a duration), max_vs_blue (a ratio), or both")
		}
		if l.Max != nil {
			positive(c, lp+".max", *l.Max, false)
		}
		ratio(c, lp+".max_vs_blue", l.MaxVsBlue)
	}
}

func ratio(c *collector, p string, v *float64) {
	if v != nil && !(*v > 0) {
		c.add(p, "must be a ratio above 0 (1.5 allows green 50%% worse than blue), got %v", *v)
	}
}

// shellStyleVar finds, in a command argument, a $NAME (without braces)
// that names a variable the instance gets (PORT, BG_*, or one of the
// spec's env), which is surely meant as ${NAME}; other $ words (awk's $1)
// are left alone.
func shellStyleVar(arg string, env map[string]string) string {
	for _, m := range bareVar.FindAllStringSubmatchIndex(arg, -1) {
		if m[0] > 0 && arg[m[0]-1] == '$' {
			continue // $$NAME: a literal $
		}
		name := arg[m[2]:m[3]]
		if _, ok := env[name]; ok || name == "PORT" || strings.HasPrefix(name, "BG_") {
			return name
		}
	}
	return ""
}

var bareVar = regexp.MustCompile(`\$([A-Za-z_][A-Za-z0-9_]*)`)
