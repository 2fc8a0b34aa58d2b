// Package spec reads, checks and writes an app's bluegreen.yaml.
//
// Parse is the one entry point: it decodes strictly (every problem of a file is
// reported at once, each with its line, column and key path), fills defaults in
// one place (ApplyDefaults), expands the strategy preset into steps and checks
// the cross-field rules (Validate). Strategy.Steps of a parsed spec is the only
// description of how traffic moves that the engine needs.
package spec

// FileName is the spec's name at the root of a bundle.
const FileName = "bluegreen.yaml"

// Spec is the whole of bluegreen.yaml.
type Spec struct {
	App      string `yaml:"app" json:"app"`
	Platform string `yaml:"platform" json:"platform"`
	// RunAs names the user the app's instances and hooks run as; empty
	// means the server's choice (a user of the app's own, on a server
	// running as root). The server decides whether it allows the name.
	RunAs   string   `yaml:"run_as,omitempty" json:"run_as,omitempty"`
	Process *Process `yaml:"process,omitempty" json:"process,omitempty"`
	Docker  *Docker  `yaml:"docker,omitempty" json:"docker,omitempty"`
	// Kubernetes runs the app's instances as pods of a cluster.
	Kubernetes *Kubernetes `yaml:"kubernetes,omitempty" json:"kubernetes,omitempty"`
	// Services makes the app a stack: several programs deployed, switched
	// and rolled back as one. Without it, the app is a stack of one, run
	// from Process, Docker or Kubernetes.
	Services map[string]*Service `yaml:"services,omitempty" json:"services,omitempty"`
	Router   Router              `yaml:"router" json:"router"`
	Health   Health              `yaml:"health" json:"health"`
	Hooks    Hooks               `yaml:"hooks" json:"hooks"`
	Strategy Strategy            `yaml:"strategy" json:"strategy"`
	Checks   Checks              `yaml:"checks" json:"checks"`
	Bake     Duration            `yaml:"bake" json:"bake"`
	Retire   Retire              `yaml:"retire" json:"retire"`
	Params   []string            `yaml:"params" json:"params"`
	// Notifications are webhooks sent on events of the app's deployments.
	Notifications []Notification `yaml:"notifications,omitempty" json:"notifications,omitempty"`

	file  string          // where the spec was read from, for problems found after parsing
	pos   map[string]pos  // key path → position of its value, filled by the decoder
	given map[string]bool // key paths written in the file with a non-empty value
}

// Platforms.
const (
	PlatformProcess    = "process"
	PlatformDocker     = "docker"
	PlatformKubernetes = "kubernetes"
)

// Process runs each instance as a local process started from the unpacked bundle.
type Process struct {
	// Command is the argv, not a shell line; ${NAME} is expanded (see Expand).
	Command []string `yaml:"command" json:"command"`
	// Dir is the working directory, relative to the bundle root.
	Dir         string            `yaml:"dir" json:"dir"`
	Instances   int               `yaml:"instances" json:"instances"`
	Env         map[string]string `yaml:"env" json:"env"`
	StopSignal  string            `yaml:"stop_signal" json:"stop_signal"`
	StopTimeout Duration          `yaml:"stop_timeout" json:"stop_timeout"`
}

// Router describes the app's listeners on the built-in router.
type Router struct {
	Production string   `yaml:"production" json:"production"`
	Test       string   `yaml:"test" json:"test"`
	Hosts      []string `yaml:"hosts" json:"hosts"`
	Sticky     bool     `yaml:"sticky" json:"sticky"`
	// PreviewHeader, when set, lets a request pick a fleet ("blue" or "green")
	// on the production listener, so people can look at green before the shift.
	PreviewHeader string `yaml:"preview_header" json:"preview_header"`
	// PreviewSecretParam names a param of the spec's params (a secure one,
	// as a rule) whose value the preview header must carry: "green;
	// secret=VALUE". Without it, anyone who knows the header reaches green.
	PreviewSecretParam string `yaml:"preview_secret_param,omitempty" json:"preview_secret_param,omitempty"`
	// TLS, when set, serves the app over HTTPS (see TLS).
	TLS *TLS `yaml:"tls,omitempty" json:"tls,omitempty"`
	// AccessLog writes one JSON line per request to the router's access log.
	AccessLog bool `yaml:"access_log,omitempty" json:"access_log,omitempty"`
	// MaxBody caps request bodies ("10MiB", "512KiB"); larger ones are
	// answered 413. Empty means no cap. See MaxBodyBytes.
	MaxBody string `yaml:"max_body,omitempty" json:"max_body,omitempty"`
	// Timeout is how long an instance may take to start its answer; past
	// it the client gets 504. Zero means no limit.
	Timeout Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// Health is the HTTP check every instance must pass before it gets traffic.
type Health struct {
	Path               string   `yaml:"path" json:"path"`
	Interval           Duration `yaml:"interval" json:"interval"`
	Timeout            Duration `yaml:"timeout" json:"timeout"`
	HealthyThreshold   int      `yaml:"healthy_threshold" json:"healthy_threshold"`
	UnhealthyThreshold int      `yaml:"unhealthy_threshold" json:"unhealthy_threshold"`
	StartupTimeout     Duration `yaml:"startup_timeout" json:"startup_timeout"`
}

// Hooks lists the commands run at each lifecycle event, in order. The names
// follow CodeDeploy's. Every event runs green's hooks except
// ApplicationStop, whose hooks come from the revision being stopped, as
// CodeDeploy's ApplicationStop scripts do: the retiring revision's (blue's)
// once it is drained, or green's when a rollback stops it.
type Hooks struct {
	BeforeInstall         []Hook `yaml:"before_install" json:"before_install"`
	AfterInstall          []Hook `yaml:"after_install" json:"after_install"`
	ApplicationStart      []Hook `yaml:"application_start" json:"application_start"`
	ValidateService       []Hook `yaml:"validate_service" json:"validate_service"`
	AfterAllowTestTraffic []Hook `yaml:"after_allow_test_traffic" json:"after_allow_test_traffic"`
	BeforeAllowTraffic    []Hook `yaml:"before_allow_traffic" json:"before_allow_traffic"`
	AfterAllowTraffic     []Hook `yaml:"after_allow_traffic" json:"after_allow_traffic"`
	BeforeBlockTraffic    []Hook `yaml:"before_block_traffic" json:"before_block_traffic"`
	AfterBlockTraffic     []Hook `yaml:"after_block_traffic" json:"after_block_traffic"`
	ApplicationStop       []Hook `yaml:"application_stop" json:"application_stop"`
	OnRollback            []Hook `yaml:"on_rollback" json:"on_rollback"`
}

// Hook is one command run with /bin/sh -c from the bundle root.
type Hook struct {
	Run     string   `yaml:"run" json:"run"`
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// Events returns the hook lists by event name, in lifecycle order.
func (h *Hooks) Events() []HookEvent {
	return []HookEvent{
		{"before_install", h.BeforeInstall},
		{"after_install", h.AfterInstall},
		{"application_start", h.ApplicationStart},
		{"validate_service", h.ValidateService},
		{"after_allow_test_traffic", h.AfterAllowTestTraffic},
		{"before_allow_traffic", h.BeforeAllowTraffic},
		{"after_allow_traffic", h.AfterAllowTraffic},
		{"before_block_traffic", h.BeforeBlockTraffic},
		{"after_block_traffic", h.AfterBlockTraffic},
		{"application_stop", h.ApplicationStop},
		{"on_rollback", h.OnRollback},
	}
}

// HookEvent pairs a lifecycle event name with its hooks.
type HookEvent struct {
	Name  string
	Hooks []Hook
}

// Strategy says how production traffic moves from blue to green.
type Strategy struct {
	// Preset names a CodeDeploy-style configuration. ApplyDefaults expands it
	// into Steps and clears it, so Steps is the single source afterwards.
	Preset            string   `yaml:"preset,omitempty" json:"preset,omitempty"`
	Steps             []Step   `yaml:"steps" json:"steps"`
	Approval          string   `yaml:"approval" json:"approval"`
	ApprovalTimeout   Duration `yaml:"approval_timeout" json:"approval_timeout"`
	OnApprovalTimeout string   `yaml:"on_approval_timeout" json:"on_approval_timeout"`
	ProgressDeadline  Duration `yaml:"progress_deadline" json:"progress_deadline"`

	expandedFrom string // the preset Steps came from, shown as a comment by Marshal
}

// Approval modes and actions on approval timeout.
const (
	ApprovalAuto    = "auto"
	ApprovalManual  = "manual"
	TimeoutRollback = "rollback"
	TimeoutContinue = "continue"

	InconclusiveWait     = "wait"
	InconclusiveRollback = "rollback"
)

// Step is one move of the strategy: set green's weight (percent of production
// traffic), then pause. A step with only a pause waits; Pause.Indefinite waits
// for `promote`.
type Step struct {
	Weight *int   `yaml:"weight,omitempty" json:"weight,omitempty"`
	Pause  *Pause `yaml:"pause,omitempty" json:"pause,omitempty"`
}

// Checks are the analysis rules evaluated while traffic shifts and during bake.
type Checks struct {
	Interval     Duration `yaml:"interval" json:"interval"`
	FailureLimit int      `yaml:"failure_limit" json:"failure_limit"`
	MinRequests  int      `yaml:"min_requests" json:"min_requests"`
	// InconclusiveLimit consecutive inconclusive evaluations make the
	// deployment do what OnInconclusive says: wait for a person, or roll back.
	InconclusiveLimit int    `yaml:"inconclusive_limit" json:"inconclusive_limit"`
	OnInconclusive    string `yaml:"on_inconclusive" json:"on_inconclusive"`
	Rules             []Rule `yaml:"rules" json:"rules"`
	// Prometheus is the base URL of the Prometheus that prometheus rules
	// query; empty: the server's (bluegreen server --prometheus).
	Prometheus string `yaml:"prometheus,omitempty" json:"prometheus,omitempty"`
}

// Rule is one check; exactly one of its fields is set.
type Rule struct {
	ErrorRate  *RateLimit      `yaml:"error_rate,omitempty" json:"error_rate,omitempty"`
	LatencyP50 *LatencyLimit   `yaml:"latency_p50,omitempty" json:"latency_p50,omitempty"`
	LatencyP95 *LatencyLimit   `yaml:"latency_p95,omitempty" json:"latency_p95,omitempty"`
	LatencyP99 *LatencyLimit   `yaml:"latency_p99,omitempty" json:"latency_p99,omitempty"`
	Command    *CommandRule    `yaml:"command,omitempty" json:"command,omitempty"`
	Webhook    *WebhookRule    `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	Prometheus *PrometheusRule `yaml:"prometheus,omitempty" json:"prometheus,omitempty"`
	Judge      *JudgeRule      `yaml:"judge,omitempty" json:"judge,omitempty"`
}

// RateLimit bounds green's share of 5xx answers over an interval, absolutely
// (Max, 0..1) and/or relative to blue's in the same interval (MaxVsBlue).
type RateLimit struct {
	Max       *float64 `yaml:"max,omitempty" json:"max,omitempty"`
	MaxVsBlue *float64 `yaml:"max_vs_blue,omitempty" json:"max_vs_blue,omitempty"`
}

// LatencyLimit bounds a latency percentile of green, absolutely and/or
// relative to blue's.
type LatencyLimit struct {
	Max       *Duration `yaml:"max,omitempty" json:"max,omitempty"`
	MaxVsBlue *float64  `yaml:"max_vs_blue,omitempty" json:"max_vs_blue,omitempty"`
}

// CommandRule passes when its command exits 0 within Timeout.
type CommandRule struct {
	Run     string   `yaml:"run" json:"run"`
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// WebhookRule passes when a POST to URL answers 2xx within Timeout.
type WebhookRule struct {
	URL     string   `yaml:"url" json:"url"`
	Timeout Duration `yaml:"timeout" json:"timeout"`
}

// Retire says how the old fleet leaves once green has all the traffic.
type Retire struct {
	KeepBlue     Duration `yaml:"keep_blue" json:"keep_blue"`
	DrainTimeout Duration `yaml:"drain_timeout" json:"drain_timeout"`
	// DrainSpread, when set, is the period after the drain timeout over
	// which the old fleet's connections still open are closed one after
	// another, so that their clients do not all reconnect at once.
	DrainSpread         Duration `yaml:"drain_spread,omitempty" json:"drain_spread,omitempty"`
	KeepGreenOnRollback bool     `yaml:"keep_green_on_rollback" json:"keep_green_on_rollback"`
}
