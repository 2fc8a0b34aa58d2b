package router

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Config is the route file (YAML) and the body of PUT /routes (JSON of the same shape).
// Field names are a contract with users and with the control plane.
type Config struct {
	// Admin is where the admin API listens: a loopback host:port or "unix:/path".
	Admin string `json:"admin,omitempty" yaml:"admin"`
	// AdminToken, when set, is required as "Authorization: Bearer TOKEN" on the admin API.
	AdminToken string `json:"admin_token,omitempty" yaml:"admin_token"`
	// Production and Test are the default listeners of apps that name none of their own.
	Production    string    `json:"production,omitempty" yaml:"production"`
	Test          string    `json:"test,omitempty" yaml:"test"`
	ProductionTLS *TLSFiles `json:"production_tls,omitempty" yaml:"production_tls"`
	TestTLS       *TLSFiles `json:"test_tls,omitempty" yaml:"test_tls"`
	// TrustForwarded keeps client-supplied X-Forwarded-* headers (appending to them)
	// instead of replacing them; only for a router behind another trusted proxy.
	TrustForwarded bool `json:"trust_forwarded,omitempty" yaml:"trust_forwarded"`
	// RequestIDHeader names the request ID header; default X-Request-Id.
	RequestIDHeader string                `json:"request_id_header,omitempty" yaml:"request_id_header"`
	Apps            map[string]*AppConfig `json:"apps" yaml:"apps"`
}

// TLSFiles names a certificate and its key in PEM files.
type TLSFiles struct {
	CertFile string `json:"cert_file" yaml:"cert_file"`
	KeyFile  string `json:"key_file" yaml:"key_file"`
}

// AppConfig routes one app.
type AppConfig struct {
	// Hosts the app answers on its listeners: exact names, "*.example.com", or "*".
	Hosts []string `json:"hosts,omitempty" yaml:"hosts"`
	// TestHosts, when set, are the hosts of the test listener instead of Hosts
	// (the candidate's own hosts while a deployment changes them).
	TestHosts []string `json:"test_hosts,omitempty" yaml:"test_hosts"`
	// Production and Test override the top-level listeners for this app.
	Production    string                  `json:"production,omitempty" yaml:"production"`
	Test          string                  `json:"test,omitempty" yaml:"test"`
	ProductionTLS *TLSFiles               `json:"production_tls,omitempty" yaml:"production_tls"`
	TestTLS       *TLSFiles               `json:"test_tls,omitempty" yaml:"test_tls"`
	Fleets        map[string]*FleetConfig `json:"fleets" yaml:"fleets"`
	// TestFleet is the fleet the test listener serves.
	TestFleet string        `json:"test_fleet,omitempty" yaml:"test_fleet"`
	Health    *HealthConfig `json:"health,omitempty" yaml:"health"`
	// Sticky pins a client to the fleet that served it with a cookie.
	Sticky       bool   `json:"sticky,omitempty" yaml:"sticky"`
	StickyCookie string `json:"sticky_cookie,omitempty" yaml:"sticky_cookie"`
	// PreviewHeader, when set, lets a request name the fleet it wants (e.g. X-Bluegreen-Fleet: green).
	PreviewHeader string `json:"preview_header,omitempty" yaml:"preview_header"`
	// PreviewSecret, when set, must come with the fleet's name in the preview
	// header ("green; secret=SECRET"); without it the header is ignored.
	PreviewSecret string `json:"preview_secret,omitempty" yaml:"preview_secret"`
	// Path is the prefix of the request paths the app answers on its
	// listeners and hosts ("" or "/": every path). The longest prefix wins
	// among the apps whose hosts match a request.
	Path string `json:"path,omitempty" yaml:"path"`
	// StripPrefix removes Path from the request target before it is sent
	// to a target: /api/items goes on as /items.
	StripPrefix bool `json:"strip_prefix,omitempty" yaml:"strip_prefix"`
	// TLS, when set, terminates HTTPS for the app's hosts on its production
	// and test listeners (see AppTLS).
	TLS *AppTLS `json:"tls,omitempty" yaml:"tls"`
	// TestListenerTLS and TestListenerPlain give the test listener another
	// TLS than TLS: the candidate's, while a deployment adds HTTPS to an
	// app (or drops it), so that its test listener is what it will be.
	TestListenerTLS   *AppTLS `json:"test_listener_tls,omitempty" yaml:"test_listener_tls"`
	TestListenerPlain bool    `json:"test_listener_plain,omitempty" yaml:"test_listener_plain"`
	// AccessLog writes one JSON line per request of the app to the
	// router's access log (see Options.AccessLog).
	AccessLog bool `json:"access_log,omitempty" yaml:"access_log"`
	// MaxBody, when above zero, is the largest request body in bytes the
	// app takes: a larger one is answered 413.
	MaxBody int64 `json:"max_body,omitempty" yaml:"max_body"`
	// Timeout, when set, is how long a target may take to send the head of
	// its answer; past it the client gets 504.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout"`
	// DrainSpread, when set, is the period over which a drain that reaches
	// its deadline closes the fleet's open connections one by one, so that
	// their clients do not all reconnect at once.
	DrainSpread Duration `json:"drain_spread,omitempty" yaml:"drain_spread"`
	// Pause, when set, holds the app's new production requests until a
	// table without it is applied; Maintenance answers them with a 503
	// page. The test listener is not affected by either (see gate.go).
	Pause       *PauseConfig       `json:"pause,omitempty" yaml:"pause"`
	Maintenance *MaintenanceConfig `json:"maintenance,omitempty" yaml:"maintenance"`
}

// pathPrefix is the app's path prefix, "/" when it has none.
func (a *AppConfig) pathPrefix() string {
	if a.Path == "" {
		return "/"
	}
	return a.Path
}

// FleetConfig is one fleet of an app.
type FleetConfig struct {
	Weight  int      `json:"weight" yaml:"weight"`
	Targets []string `json:"targets" yaml:"targets"`
	// Revision labels the fleet's metrics; metrics restart when it changes.
	Revision string `json:"revision,omitempty" yaml:"revision"`
	// Fenced fleets take no new requests; in-flight ones finish and sticky clients are re-pinned.
	Fenced bool `json:"fenced,omitempty" yaml:"fenced"`
	// FencedTargets are targets of this fleet that take no new requests.
	FencedTargets []string `json:"fenced_targets,omitempty" yaml:"fenced_targets"`
	// Health, when set, is this fleet's own active check instead of the app's:
	// each revision is checked as its own spec says.
	Health *HealthConfig `json:"health,omitempty" yaml:"health"`
	// Role, when set, is the name the preview header uses for this fleet
	// ("blue" for the live fleet, "green" for the candidate) when the fleets'
	// names are slots that alternate between deployments.
	Role string `json:"role,omitempty" yaml:"role"`
}

// HealthConfig describes the active health check of every target of an app.
type HealthConfig struct {
	Path               string   `json:"path" yaml:"path"`
	Interval           Duration `json:"interval,omitempty" yaml:"interval"`
	Timeout            Duration `json:"timeout,omitempty" yaml:"timeout"`
	HealthyThreshold   int      `json:"healthy_threshold,omitempty" yaml:"healthy_threshold"`
	UnhealthyThreshold int      `json:"unhealthy_threshold,omitempty" yaml:"unhealthy_threshold"`
	// Status lists accepted status codes; empty means 200-399.
	Status []int `json:"status,omitempty" yaml:"status"`
	// Host is sent as the Host header of checks when set.
	Host string `json:"host,omitempty" yaml:"host"`
}

// Duration is a time.Duration written as "1s", "500ms", "2m" in YAML and JSON.
type Duration time.Duration

// D returns the value as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes the duration as a string such as "1s".
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "1s"-style strings.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"1s\", got %s", b)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("bad duration %q (use a form such as 500ms, 2s, 1m)", s)
	}
	*d = Duration(v)
	return nil
}

// MarshalYAML writes the duration as a string such as "1s".
func (d Duration) MarshalYAML() (any, error) { return time.Duration(d).String(), nil }

// UnmarshalYAML reads "1s"-style strings.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if n.Kind != yaml.ScalarNode || err != nil {
		return fmt.Errorf("line %d: bad duration %q (use a form such as 500ms, 2s, 1m)", n.Line, n.Value)
	}
	*d = Duration(v)
	return nil
}

// Defaults for fields left empty.
const (
	DefaultHealthInterval     = 2 * time.Second
	DefaultHealthTimeout      = time.Second
	DefaultHealthyThreshold   = 2
	DefaultUnhealthyThreshold = 3
	DefaultRequestIDHeader    = "X-Request-Id"
)

// LoadFile reads and validates a route file.
func LoadFile(path string) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading route file: %w", err)
	}
	cfg, err := ParseYAML(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return cfg, nil
}

// ParseYAML decodes a route file strictly (unknown keys are errors naming their line) and validates it.
func ParseYAML(data []byte) (*Config, error) {
	var cfg Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("route file is empty")
		}
		return nil, fmt.Errorf("decoding route file: %w", err)
	}
	return &cfg, cfg.Validate()
}

// ParseJSON decodes a routing table strictly and validates it.
func ParseJSON(data []byte) (*Config, error) {
	var cfg Config
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&cfg); err != nil {
		return nil, fmt.Errorf("decoding routing table: %w", err)
	}
	if dec.More() {
		return nil, errors.New("decoding routing table: trailing data after the JSON object")
	}
	return &cfg, cfg.Validate()
}

var (
	nameRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// appRe also takes names joined by dots ("shop.api.green"): the
	// control plane names the router apps of a stack's services so, and
	// they never clash with its apps, whose names have no dots.
	appRe  = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)
	pathRe = regexp.MustCompile(`^(/[A-Za-z0-9._~!$&'()*+,;=:@-]+)+$`)
	hostRe = regexp.MustCompile(`^(\*\.)?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$`)
	hdrRe  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
)

// problems collects every error of a table so that all are reported at once.
type problems []string

func (p *problems) add(format string, args ...any) { *p = append(*p, fmt.Sprintf(format, args...)) }

func (p problems) err() error {
	if len(p) == 0 {
		return nil
	}
	return errors.New("invalid routing table:\n  " + strings.Join(p, "\n  "))
}

// Validate checks the table and fills in defaults; it reports every problem at once.
func (c *Config) Validate() error { return c.ValidateAgainst(nil) }

// ValidateAgainst is Validate of a table made from prev, a table that
// passed Validate with the same settings: an app that is the very same
// value as prev's is only checked against the others (hosts, listeners,
// TLS), not again on its own, so a change of one app among a thousand
// costs that app's checks and the maps of hosts and listeners.
func (c *Config) ValidateAgainst(prev *Config) error {
	var p problems
	if c.Admin != "" {
		if err := checkAdminAddr(c.Admin); err != nil {
			p.add("admin: %v", err)
		}
	}
	if c.RequestIDHeader == "" {
		c.RequestIDHeader = DefaultRequestIDHeader
	} else if !hdrRe.MatchString(c.RequestIDHeader) {
		p.add("request_id_header: %q is not a valid header name", c.RequestIDHeader)
	}
	checkListener(&p, "production", c.Production)
	checkListener(&p, "test", c.Test)
	checkTLS(&p, "production_tls", c.ProductionTLS)
	checkTLS(&p, "test_tls", c.TestTLS)

	type use struct{ kind, app string }
	listeners := map[string]use{}
	hostOwner := map[string]string{} // listener+host → app
	for _, name := range sortedKeys(c.Apps) {
		a := c.Apps[name]
		at := "apps." + name
		if a == nil {
			p.add("%s: empty app", at)
			continue
		}
		known := prev != nil && prev.Apps[name] == a
		if !known {
			c.checkAppAlone(&p, name, a)
		}
		l := c.listenersOf(a)
		if l.production == "" {
			p.add("%s: no production listener (set production at the top or in the app)", at)
		}
		if l.production != "" && l.production == l.test {
			p.add("%s: production and test listeners are the same address %s", at, l.production)
		}
		if len(a.Hosts) == 0 {
			a.Hosts = []string{"*"}
		}
		if !known {
			checkHosts(&p, at+".hosts", a.Hosts)
			checkHosts(&p, at+".test_hosts", a.TestHosts)
		}
		for _, kind := range []string{"production", "test"} {
			addr, hosts := l.production, a.Hosts
			if kind == "test" {
				addr = l.test
				if len(a.TestHosts) > 0 {
					hosts = a.TestHosts
				}
			}
			if addr == "" {
				continue
			}
			if u, ok := listeners[addr]; ok && u.kind != kind {
				p.add("%s: %s cannot be the %s listener of app %s: it is the %s listener of app %s", at, addr, kind, name, u.kind, u.app)
				continue
			}
			listeners[addr] = use{kind, name}
			for _, h := range hosts {
				key := addr + " " + h + " " + a.pathPrefix()
				if other, ok := hostOwner[key]; ok && other != name {
					if a.pathPrefix() == "/" {
						p.add("%s: host %q on %s is claimed by app %s and by app %s", at, h, addr, other, name)
					} else {
						p.add("%s: host %q and path %s on %s are claimed by app %s and by app %s", at, h, a.Path, addr, other, name)
					}
				}
				hostOwner[key] = name
			}
		}
		if !known {
			c.checkFleets(&p, name, a, l)
		}
		checkEdgeOps(&p, at, a)
		checkGate(&p, at, a)
	}
	c.checkAppTLS(&p)
	return p.err()
}

// checkAppAlone checks what of an app does not depend on the others: its
// name, path, own listeners and their TLS files.
func (c *Config) checkAppAlone(p *problems, name string, a *AppConfig) {
	at := "apps." + name
	if !appRe.MatchString(name) || len(name) > maxAppName {
		p.add("%s: app name must be 1-63 characters of a-z, 0-9 and '-' (or such names joined by dots, %d characters at most)", at, maxAppName)
	}
	if a.Path != "" && a.Path != "/" && (!pathRe.MatchString(a.Path) || strings.Contains(a.Path+"/", "/./") || strings.Contains(a.Path+"/", "/../")) {
		p.add("%s.path: %q is not a path prefix: want / or /segments without a trailing /, . or .. segments, query or escapes", at, a.Path)
	}
	if a.Production != "" {
		checkListener(p, at+".production", a.Production)
	}
	if a.Test != "" {
		checkListener(p, at+".test", a.Test)
	}
	checkTLS(p, at+".production_tls", a.ProductionTLS)
	checkTLS(p, at+".test_tls", a.TestTLS)
}

// checkFleets checks an app's fleets and the settings that are its own
// (stickiness, preview, health), filling their defaults in.
func (c *Config) checkFleets(p *problems, name string, a *AppConfig, l appListeners) {
	at := "apps." + name
	if len(a.Fleets) == 0 {
		p.add("%s.fleets: an app needs at least one fleet", at)
	}
	if len(a.Fleets) > maxFleets {
		p.add("%s.fleets: at most %d fleets per app", at, maxFleets)
	}
	roles := map[string]string{}
	for _, fname := range sortedKeys(a.Fleets) {
		fat := at + ".fleets." + fname
		f := a.Fleets[fname]
		checkFleet(p, fat, fname, f)
		if f == nil {
			continue
		}
		if f.Health != nil {
			checkHealth(p, fat+".health", f.Health)
		}
		if f.Role != "" {
			if !nameRe.MatchString(f.Role) {
				p.add("%s.role: must be 1-63 characters of a-z, 0-9 and '-'", fat)
			} else if other, ok := roles[f.Role]; ok {
				p.add("%s.role: fleet %s has the role %q too", fat, other, f.Role)
			}
			roles[f.Role] = fname
		}
	}
	if a.TestFleet != "" {
		if _, ok := a.Fleets[a.TestFleet]; !ok {
			p.add("%s.test_fleet: no fleet named %q", at, a.TestFleet)
		}
		if l.test == "" {
			p.add("%s.test_fleet: set but there is no test listener", at)
		}
	}
	if a.Sticky && a.StickyCookie == "" {
		a.StickyCookie = "bg_" + name
	}
	if !a.Sticky && a.StickyCookie != "" {
		p.add("%s.sticky_cookie: set while sticky is false (set sticky: true, or remove it)", at)
	}
	if a.StickyCookie != "" && !hdrRe.MatchString(a.StickyCookie) {
		p.add("%s.sticky_cookie: %q is not a valid cookie name", at, a.StickyCookie)
	}
	if a.PreviewHeader != "" && !hdrRe.MatchString(a.PreviewHeader) {
		p.add("%s.preview_header: %q is not a valid header name", at, a.PreviewHeader)
	}
	if a.PreviewSecret != "" {
		checkPreviewSecret(p, at, a)
	}
	if a.Health != nil {
		checkHealth(p, at+".health", a.Health)
	}
}

// Bounds of a preview secret: long enough not to be guessed, short enough for a header.
const (
	minPreviewSecret = 16
	maxPreviewSecret = 256
)

var secretRe = regexp.MustCompile(`^[A-Za-z0-9._~+/=-]+$`)

// checkPreviewSecret checks an app's preview secret without ever quoting it.
func checkPreviewSecret(p *problems, at string, a *AppConfig) {
	if a.PreviewHeader == "" {
		p.add("%s.preview_secret: set without preview_header (set preview_header too, or remove it)", at)
	}
	if n := len(a.PreviewSecret); n < minPreviewSecret || n > maxPreviewSecret || !secretRe.MatchString(a.PreviewSecret) {
		p.add("%s.preview_secret: must be %d to %d characters of A-Z, a-z, 0-9 and . _ ~ + / = - (it has %d characters)",
			at, minPreviewSecret, maxPreviewSecret, n)
	}
}

// appListeners are an app's listeners after the top-level defaults apply.
type appListeners struct {
	production, test       string
	productionTLS, testTLS *TLSFiles
}

// listenersOf resolves an app's listeners; the defaults are not copied into the
// app, so that changing a top-level listener changes every app that uses it.
func (c *Config) listenersOf(a *AppConfig) appListeners {
	l := appListeners{a.Production, a.Test, a.ProductionTLS, a.TestTLS}
	if l.production == "" {
		l.production = c.Production
	}
	if l.test == "" {
		l.test = c.Test
	}
	if l.productionTLS == nil {
		l.productionTLS = c.ProductionTLS
	}
	if l.testTLS == nil {
		l.testTLS = c.TestTLS
	}
	return l
}

// maxAppName bounds an app's name, dots included.
const maxAppName = 200

// maxFleets bounds fleets per app so that the weight schedules can be cached per subset.
const maxFleets = 6

func checkHosts(p *problems, at string, hosts []string) {
	for i, h := range hosts {
		h = strings.ToLower(h)
		hosts[i] = h
		if h != "*" && !hostRe.MatchString(h) {
			p.add("%s[%d]: %q is not a host name, a *.suffix wildcard or *", at, i, h)
		}
	}
}

func checkFleet(p *problems, at, name string, f *FleetConfig) {
	if f == nil {
		p.add("%s: empty fleet", at)
		return
	}
	if !nameRe.MatchString(name) {
		p.add("%s: fleet name must be 1-63 characters of a-z, 0-9 and '-'", at)
	}
	if f.Weight < 0 || f.Weight > 100 {
		p.add("%s.weight: %d is out of range 0..100", at, f.Weight)
	}
	if f.Weight > 0 && len(f.Targets) == 0 {
		p.add("%s: has weight %d but no targets", at, f.Weight)
	}
	seen := map[string]bool{}
	for i, t := range f.Targets {
		if err := checkHostPort(t); err != nil {
			p.add("%s.targets[%d]: %v", at, i, err)
		}
		if seen[t] {
			p.add("%s.targets[%d]: %s is listed twice", at, i, t)
		}
		seen[t] = true
	}
	for i, t := range f.FencedTargets {
		if !seen[t] {
			p.add("%s.fenced_targets[%d]: %s is not one of the fleet's targets", at, i, t)
		}
	}
}

func checkHealth(p *problems, at string, h *HealthConfig) {
	if !strings.HasPrefix(h.Path, "/") {
		p.add("%s.path: must start with /, got %q", at, h.Path)
	}
	if h.Interval == 0 {
		h.Interval = Duration(DefaultHealthInterval)
	}
	if h.Timeout == 0 {
		h.Timeout = Duration(min(DefaultHealthTimeout, h.Interval.D()))
	}
	if h.Interval < Duration(10*time.Millisecond) {
		p.add("%s.interval: %s is below the 10ms minimum", at, h.Interval.D())
	}
	if h.Timeout <= 0 || h.Timeout > h.Interval {
		p.add("%s.timeout: %s must be above zero and at most the interval %s", at, h.Timeout.D(), h.Interval.D())
	}
	if h.HealthyThreshold == 0 {
		h.HealthyThreshold = DefaultHealthyThreshold
	}
	if h.UnhealthyThreshold == 0 {
		h.UnhealthyThreshold = DefaultUnhealthyThreshold
	}
	if h.HealthyThreshold < 1 || h.UnhealthyThreshold < 1 {
		p.add("%s: thresholds must be at least 1", at)
	}
	for i, s := range h.Status {
		if s < 100 || s > 599 {
			p.add("%s.status[%d]: %d is not an HTTP status code", at, i, s)
		}
	}
}

func checkListener(p *problems, at, addr string) {
	if addr == "" {
		return
	}
	if err := checkHostPort(addr); err != nil {
		p.add("%s: %v", at, err)
	}
}

func checkTLS(p *problems, at string, t *TLSFiles) {
	if t == nil {
		return
	}
	if t.CertFile == "" || t.KeyFile == "" {
		p.add("%s: both cert_file and key_file are required", at)
	}
}

func checkHostPort(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q has a bad port", addr)
	}
	if host == "" {
		return fmt.Errorf("%q has no host (use 127.0.0.1 or 0.0.0.0)", addr)
	}
	return nil
}

func checkAdminAddr(addr string) error {
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		if path == "" {
			return errors.New("unix: needs a socket path")
		}
		return nil
	}
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is neither host:port nor unix:/path", addr)
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("%q must be a loopback address or a unix socket", addr)
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// clone returns a deep copy of one app's routes.
func (a *AppConfig) clone() *AppConfig {
	b, err := json.Marshal(a)
	if err != nil {
		panic(fmt.Sprintf("app routes do not marshal: %v", err))
	}
	var out AppConfig
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("app routes do not unmarshal: %v", err))
	}
	return &out
}

// clone returns a deep copy, so that the running table is never shared with callers.
func (c *Config) clone() *Config {
	b, err := json.Marshal(c)
	if err != nil {
		panic(fmt.Sprintf("routing table does not marshal: %v", err))
	}
	var out Config
	if err := json.Unmarshal(b, &out); err != nil {
		panic(fmt.Sprintf("routing table does not unmarshal: %v", err))
	}
	return &out
}
