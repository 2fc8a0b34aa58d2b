package spec

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
)

// serviceName is a DNS label starting with a letter, so that NAME_URL is
// an environment name; short enough that instance IDs
// (APP-GENERATION-SLOT-SERVICE-INDEX) stay within 100 characters.
var serviceName = regexp.MustCompile(`^[a-z]([a-z0-9-]{0,28}[a-z0-9])?$`)

// maxAppAndService bounds the app's and a service's names together, for
// the same reason.
const maxAppAndService = 78

// validateServices checks what a stack adds: service names, dependencies,
// listeners and paths, and the ${services.NAME.url} references.
func (s *Spec) validateServices(c *collector) {
	s.validateServiceRefs(c)
	if !s.IsStack() {
		return
	}
	for _, sec := range []struct {
		key   string
		given bool
	}{{"process", s.Process != nil}, {"docker", s.Docker != nil}} {
		if sec.given {
			c.add(sec.key, "a stack's services each have their own run section: move it under services.NAME (or remove services: for an app of one service)")
		}
	}
	public := 0
	for _, name := range slices.Sorted(maps.Keys(s.Services)) {
		at := "services." + name
		switch {
		case !serviceName.MatchString(name):
			c.add(at, "bad service name %s: want 1 to 30 of a-z, 0-9 and '-', starting with a letter and not ending with '-'", quote(name))
		case len(s.App)+len(name) > maxAppAndService:
			c.add(at, "the app's and the service's names have %d characters together; at most %d fit in instance IDs", len(s.App)+len(name), maxAppAndService)
		}
		sv := s.Services[name]
		if sv == nil {
			continue // ApplyDefaults has not run
		}
		if sv.Platform != PlatformProcess && sv.Platform != PlatformDocker {
			c.add(at+".platform", "unknown platform %s%s; want %q or %q", quote(sv.Platform), suggest(sv.Platform, []string{PlatformProcess, PlatformDocker}), PlatformProcess, PlatformDocker)
		}
		validateHealthAt(c, at+".", sv.Health)
		if sv.Hooks != nil {
			validateHooksAt(c, at+".", sv.Hooks)
		}
		seen := map[string]bool{}
		for i, dep := range sv.DependsOn {
			p := fmt.Sprintf("%s.depends_on[%d]", at, i)
			_, known := s.Services[dep]
			switch {
			case dep == name:
				c.add(p, "service %s depends on itself", name)
			case !known:
				c.add(p, "unknown service %s%s; the stack has %s", quote(dep), suggest(dep, slices.Sorted(maps.Keys(s.Services))), strings.Join(slices.Sorted(maps.Keys(s.Services)), ", "))
			case seen[dep]:
				c.add(p, "%s is listed twice", dep)
			}
			seen[dep] = true
		}
		if sv.Router != nil {
			public++
			s.validateServiceRouter(c, at, sv.Router)
		}
	}
	if public == 0 {
		c.add("services", "no service has a router section: a stack needs at least one public service for its listeners to serve")
	}
	s.validateCycles(c)
	s.validateClaims(c)
}

// validateServiceRouter checks one public service's listeners and path.
func (s *Spec) validateServiceRouter(c *collector, at string, r *ServiceRouter) {
	at += ".router"
	if s.given[at+".test"] && !s.given[at+".production"] {
		// A test listener without a production listener reads as an
		// internal service that wants a test listener, which has none.
		c.add(at+".test", "a test listener without a production listener: an internal service has no test listener (the test listener serves the whole green stack through its public services); set production too, or leave both out to use the stack's, or remove router to keep the service internal")
	}
	prod, okProd := listener(c, at+".production", r.Production)
	test, okTest := listener(c, at+".test", r.Test)
	if okProd && okTest && sameListener(prod, test) {
		c.add(at+".test", "the test listener %s must differ from the production listener %s", r.Test, r.Production)
	}
	seen := map[string]int{}
	for i, h := range r.Hosts {
		hp := fmt.Sprintf("%s.hosts[%d]", at, i)
		if !hostName.MatchString(h) || len(h) > 253 {
			c.add(hp, "bad host name %s: want a DNS name like shop.example.com, optionally starting with *.", quote(h))
			continue
		}
		key := strings.ToLower(h)
		if j, dup := seen[key]; dup {
			c.add(hp, "host %s is listed twice (also hosts[%d])", quote(h), j)
		}
		seen[key] = i
	}
	if msg := pathProblem(r.Path); msg != "" {
		c.add(at+".path", "%s", msg)
	}
}

// pathProblem says what is wrong with a service's path prefix, or "".
func pathProblem(p string) string {
	switch {
	case !strings.HasPrefix(p, "/"):
		return fmt.Sprintf("want a path prefix starting with /, like /api, got %s", quote(p))
	case strings.ContainsAny(p, "?#% \t\r\n"):
		return fmt.Sprintf("want a plain path prefix, without a query, fragment, escapes or spaces, got %s", quote(p))
	case p != "/" && strings.HasSuffix(p, "/"):
		return fmt.Sprintf("write the prefix without its last /: %s (it matches %s and everything under %s/)", quote(strings.TrimRight(p, "/")), strings.TrimRight(p, "/"), strings.TrimRight(p, "/"))
	case strings.Contains(p, "//") || strings.Contains(p+"/", "/./") || strings.Contains(p+"/", "/../"):
		return fmt.Sprintf("want a clean path prefix, without //, . or .. segments, got %s", quote(p))
	}
	return ""
}

// sameListener says whether two listener addresses are one socket: the
// same port, on the same host or a wildcard one.
func sameListener(a, b hostPort) bool {
	return a.port == b.port && (a.host == b.host || a.wildcard() || b.wildcard())
}

// validateCycles refuses a cycle of depends_on, once per cycle, at the
// entry that closes it.
func (s *Spec) validateCycles(c *collector) {
	const (
		visiting = 1
		done     = 2
	)
	state := map[string]int{}
	var stack []string
	var visit func(name string)
	visit = func(name string) {
		state[name] = visiting
		stack = append(stack, name)
		var deps []string
		if sv := s.Services[name]; sv != nil {
			deps = sv.DependsOn
		}
		for i, dep := range deps {
			if _, known := s.Services[dep]; !known || dep == name {
				continue // reported already
			}
			switch state[dep] {
			case visiting:
				from := slices.Index(stack, dep)
				cycle := append(slices.Clone(stack[from:]), dep)
				c.add(fmt.Sprintf("services.%s.depends_on[%d]", name, i), "dependency cycle: %s; a stack starts each service after those it depends on, so one of them must go", strings.Join(cycle, " → "))
			case 0:
				visit(dep)
			}
		}
		stack = stack[:len(stack)-1]
		state[name] = done
	}
	for _, name := range slices.Sorted(maps.Keys(s.Services)) {
		if state[name] == 0 {
			visit(name)
		}
	}
}

// validateClaims refuses two public services that would answer the same
// requests (one listener, host and path), and a listener that is one
// service's production listener and another's test listener.
func (s *Spec) validateClaims(c *collector) {
	type claim struct {
		service, key, addr string
		at                 hostPort
		test               bool
		hosts              []string
		path               string
	}
	var claims []claim
	reported := map[[2]string]bool{} // a pair of services is told once
	for _, name := range slices.Sorted(maps.Keys(s.Services)) {
		sv := s.Services[name]
		if sv == nil || sv.Router == nil {
			continue
		}
		r := sv.Router
		at := "services." + name + ".router"
		hosts := r.Hosts
		if len(hosts) == 0 {
			hosts = []string{"*"}
		}
		for _, l := range []claim{{key: "production", addr: r.Production}, {key: "test", addr: r.Test, test: true}} {
			hp, ok := listener(&collector{}, "", l.addr)
			if !ok {
				continue // reported already
			}
			l.service, l.at, l.hosts, l.path = name, hp, hosts, r.Path
		others:
			for _, o := range claims {
				if o.service == name || !sameListener(o.at, hp) || reported[[2]string{o.service, name}] {
					continue
				}
				if o.test != l.test {
					kind, okind := "production", "test"
					if l.test {
						kind, okind = okind, kind
					}
					c.add(at+"."+l.key, "%s cannot be the %s listener of service %s: it is the %s listener of service %s", l.addr, kind, name, okind, o.service)
					reported[[2]string{o.service, name}] = true
					continue
				}
				if o.path != l.path {
					continue
				}
				for _, h := range l.hosts {
					for _, oh := range o.hosts {
						if strings.EqualFold(h, oh) {
							what := "host " + quote(h)
							if h == "*" {
								what = "every host"
							}
							c.add(at+".path", "services %s and %s both answer path %s on %s for %s: give one of them another path or other hosts", o.service, name, l.path, l.addr, what)
							reported[[2]string{o.service, name}] = true
							continue others
						}
					}
				}
			}
			claims = append(claims, l)
		}
	}
}

// validateServiceRefs checks every ${services.NAME.url} of the run
// sections: NAME must be a service of the stack.
func (s *Spec) validateServiceRefs(c *collector) {
	names := slices.Sorted(maps.Keys(s.Services))
	for _, pl := range s.places() {
		r := pl.run()
		if r.section == "" {
			continue
		}
		check := func(p, v string) {
			for _, ref := range serviceRefs(v) {
				switch {
				case !s.IsStack():
					c.add(p, "${services.%s.url} names a service of a stack, and this spec lists no services", ref)
				case !slices.Contains(names, ref):
					c.add(p, "${services.%s.url}: unknown service %s%s; the stack has %s", ref, quote(ref), suggest(ref, names), strings.Join(names, ", "))
				}
			}
		}
		for i, arg := range r.command {
			check(fmt.Sprintf("%s.command[%d]", r.section, i), arg)
		}
		if pl.docker != nil && pl.platform == PlatformDocker {
			for i, arg := range pl.docker.Entrypoint {
				check(fmt.Sprintf("%s.entrypoint[%d]", r.section, i), arg)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(r.env)) {
			check(r.section+".env."+k, r.env[k])
		}
	}
}
