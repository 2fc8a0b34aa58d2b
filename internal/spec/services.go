package spec

import (
	"maps"
	"regexp"
	"slices"
	"strings"
)

// Service is one program of a stack: an app whose spec lists services.
// Each has its own run section, instances, health and listeners (or none:
// an internal service), and all of them are deployed, tested, switched and
// rolled back as one. What a service leaves out it takes from the stack:
// its platform, its health settings, its listeners and hosts.
type Service struct {
	// Platform is the platform of its run section: the stack's when left
	// out.
	Platform string   `yaml:"platform" json:"platform"`
	Process  *Process `yaml:"process,omitempty" json:"process,omitempty"`
	Docker   *Docker  `yaml:"docker,omitempty" json:"docker,omitempty"`
	// Router makes the service public: it answers on the stack's
	// listeners (or its own) at Path. Nil: internal, reached only by the
	// stack's other services at ${services.NAME.url}.
	Router *ServiceRouter `yaml:"router,omitempty" json:"router,omitempty"`
	Health Health         `yaml:"health" json:"health"`
	// DependsOn names the services that start (and are healthy) before
	// this one, and drain after it.
	DependsOn []string `yaml:"depends_on" json:"depends_on"`
	// Hooks are the service's own, run after the stack's hooks of the same
	// event with the service's targets.
	Hooks *Hooks `yaml:"hooks,omitempty" json:"hooks,omitempty"`
}

// ServiceRouter is where a public service answers.
type ServiceRouter struct {
	// Production and Test are the stack's listeners when left out.
	Production string `yaml:"production" json:"production"`
	Test       string `yaml:"test" json:"test"`
	// Hosts are the stack's when left out.
	Hosts []string `yaml:"hosts" json:"hosts"`
	// Path is the prefix of the request paths the service answers: the
	// longest prefix that matches a request wins among the services on its
	// listener and host. "/" (the default) is every path.
	Path string `yaml:"path" json:"path"`
	// StripPrefix removes Path from the request before it reaches the
	// service: /api/items arrives as /items.
	StripPrefix bool `yaml:"strip_prefix" json:"strip_prefix"`
}

// DefaultPath is a public service's path when it sets none.
const DefaultPath = "/"

// IsStack says whether the spec lists services. A spec without services
// is a stack of one: its own run section, router and health.
func (s *Spec) IsStack() bool { return len(s.Services) > 0 }

// Member is one service of an app as the engine runs it, with what it left
// out filled from the stack. An app without services has one Member, named
// "", made of the spec's own sections.
type Member struct {
	// Name is the service's name; "" for the one member of an app without
	// services.
	Name     string
	Platform string
	Process  *Process
	Docker   *Docker
	Workload Workload
	Health   Health
	// Public: the member answers on the listeners of Router. An internal
	// member has no listeners of its own.
	Public    bool
	Router    ServiceRouter
	DependsOn []string
	// Hooks are the member's own (nil for none, and for the member of an
	// app without services, whose hooks are the spec's).
	Hooks *Hooks
}

// Members returns the app's services in dependency order: every service
// after the services it depends on, and otherwise by name.
func (s *Spec) Members() []Member {
	if !s.IsStack() {
		return []Member{{
			Platform: s.Platform, Process: s.Process, Docker: s.Docker, Workload: s.Workload(), Health: s.Health,
			Public: true, Router: ServiceRouter{Production: s.Router.Production, Test: s.Router.Test, Hosts: s.Router.Hosts, Path: DefaultPath},
		}}
	}
	var out []Member
	for _, name := range s.StackOrder() {
		sv := s.Services[name]
		if sv == nil {
			continue
		}
		m := Member{Name: name, Platform: sv.Platform, Process: sv.Process, Docker: sv.Docker, Workload: sv.place(name).workload(),
			Health: sv.Health, DependsOn: sv.DependsOn, Hooks: sv.Hooks}
		if sv.Router != nil {
			m.Public, m.Router = true, *sv.Router
		}
		out = append(out, m)
	}
	return out
}

// Member returns the member named name ("" for an app without services).
func (s *Spec) Member(name string) (Member, bool) {
	for _, m := range s.Members() {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}

// StackOrder returns the names of the services in dependency order (ties
// by name); a cycle, which Validate refuses, leaves its services last.
func (s *Spec) StackOrder() []string {
	names := slices.Sorted(maps.Keys(s.Services))
	done := map[string]bool{}
	var out []string
	for len(out) < len(names) {
		progress := false
		for _, n := range names {
			if done[n] {
				continue
			}
			ready := true
			if sv := s.Services[n]; sv != nil {
				for _, dep := range sv.DependsOn {
					if _, known := s.Services[dep]; known && !done[dep] && dep != n {
						ready = false
					}
				}
			}
			if ready {
				done[n] = true
				out = append(out, n)
				progress = true
			}
		}
		if !progress {
			for _, n := range names {
				if !done[n] {
					out = append(out, n)
				}
			}
			break
		}
	}
	return out
}

// place is the service's run section as a place of the spec.
func (sv *Service) place(name string) place {
	return place{"services." + name + ".", sv.Platform, sv.Process, sv.Docker}
}

// ServiceURLVar is the environment variable that holds the address of
// service name in every instance of its stack: API_URL for "api",
// ORDER_DB_URL for "order-db".
func ServiceURLVar(name string) string {
	return strings.ToUpper(strings.ReplaceAll(name, "-", "_")) + "_URL"
}

// serviceRef is the one form of ${...} that is not an environment name:
// ${services.NAME.url}, the address of another service of the stack.
var serviceRef = regexp.MustCompile(`^services\.([a-z0-9-]+)\.url$`)

// ExpandServices replaces each ${services.NAME.url} in s with url(NAME)
// and leaves everything else exactly as written ($$ and other ${NAME}
// included), for the platform to expand the rest. A name url does not know
// is left as written too; the platform then refuses it as unset.
func ExpandServices(s string, url func(name string) (string, bool)) string {
	if !strings.Contains(s, "${services.") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch s[i+1] {
		case '$':
			b.WriteString("$$")
			i++
			continue
		case '{':
			end := strings.IndexByte(s[i+2:], '}')
			if end >= 0 {
				if m := serviceRef.FindStringSubmatch(s[i+2 : i+2+end]); m != nil {
					if v, ok := url(m[1]); ok {
						b.WriteString(v)
						i += end + 2
						continue
					}
				}
			}
		}
		b.WriteByte('$')
	}
	return b.String()
}

// serviceRefs lists the services s names in ${services.NAME.url}.
func serviceRefs(s string) []string {
	var out []string
	_ = ExpandServices(s, func(name string) (string, bool) {
		out = append(out, name)
		return "", true
	})
	return out
}

// serviceLocal strips a services.NAME. prefix from a key path: what the
// path is within its service. inService says there was one; a path that
// is a service itself (services.NAME) gives "".
func serviceLocal(path string) (local string, inService bool) {
	rest, ok := strings.CutPrefix(path, "services.")
	if !ok {
		return path, false
	}
	name, local, _ := strings.Cut(rest, ".")
	if name == "" {
		return path, false
	}
	return local, true
}

// serviceDefaults fills each service's settings from its own defaults and,
// for what it shares with the stack (platform, health, listeners and
// hosts), from the stack's. It runs after the stack's own defaults.
func (s *Spec) serviceDefaults() {
	given := func(path string) bool { return s.given[path] }
	for _, name := range slices.Sorted(maps.Keys(s.Services)) {
		sv := s.Services[name]
		if sv == nil {
			sv = &Service{}
			s.Services[name] = sv
		}
		at := "services." + name + "."
		if sv.Platform == "" && !given(at+"platform") {
			sv.Platform = s.Platform
		}
		if sv.Platform == PlatformProcess && sv.Process == nil && sv.Docker == nil {
			sv.Process = &Process{}
		}
		s.sectionDefaults(sv.place(name))

		h, top := &sv.Health, s.Health
		for _, f := range []struct {
			key      string
			dst, src any
		}{
			{"path", &h.Path, top.Path},
			{"interval", &h.Interval, top.Interval},
			{"timeout", &h.Timeout, top.Timeout},
			{"healthy_threshold", &h.HealthyThreshold, top.HealthyThreshold},
			{"unhealthy_threshold", &h.UnhealthyThreshold, top.UnhealthyThreshold},
			{"startup_timeout", &h.StartupTimeout, top.StartupTimeout},
		} {
			if given(at + "health." + f.key) {
				continue
			}
			switch d := f.dst.(type) {
			case *string:
				*d = f.src.(string)
			case *int:
				*d = f.src.(int)
			case *Duration:
				*d = f.src.(Duration)
			}
		}
		if r := sv.Router; r != nil {
			if r.Production == "" && !given(at+"router.production") {
				r.Production = s.Router.Production
			}
			if r.Test == "" && !given(at+"router.test") {
				r.Test = s.Router.Test
			}
			if r.Hosts == nil && !given(at+"router.hosts") {
				r.Hosts = slices.Clone(s.Router.Hosts)
			}
			if r.Path == "" && !given(at+"router.path") {
				r.Path = DefaultPath
			}
		}
		if sv.Hooks != nil {
			for _, ev := range sv.Hooks.Events() {
				for i := range ev.Hooks {
					if ev.Hooks[i].Timeout == 0 && !given(at+hookPath(ev.Name, i)+".timeout") {
						ev.Hooks[i].Timeout = Duration(DefaultHookTimeout)
					}
				}
			}
		}
	}
}
