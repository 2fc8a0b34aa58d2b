package engine

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"strconv"
	"sync"

	"bluegreen/internal/platform/portalloc"
	"bluegreen/internal/spec"
	"bluegreen/internal/store"
)

// A stack is an app whose spec lists services (spec.Members). Its fleets
// hold an instance set per service, and the router serves it as several
// router apps, pushed together in one table swap:
//
//   - a public app per public service, named APP.SERVICE (the app of one
//     service keeps its own name, APP), on the shared listeners at the
//     service's path, with the weights, test fleet, sticky cookie and
//     preview header of the stack;
//   - an internal app per service and slot, APP.SERVICE.SLOT, whose only
//     listener is an address of its own on loopback and whose only fleet is
//     that slot's: ${services.NAME.url} and NAME_URL point there, so a
//     request that enters green reaches green only;
//   - a live app per service, APP.SERVICE.live, serving the live fleet, for
//     callers outside the stack.
//
// Router app names hold dots; the store's app names never do, so the two
// never clash.

// liveAddress names the address of a service that follows the live fleet.
const liveAddress = "live"

// publicName is the router app of a public route: the app itself for the
// app of one service, APP.SERVICE for a service of a stack.
func publicName(app, key string) string {
	if key == "" {
		return app
	}
	return app + "." + key
}

// internalName is the router app of a service's address in a slot, or of
// its live address.
func internalName(app, service, slot string) string { return app + "." + service + "." + slot }

// rootMember is the public member of a stack at path "/" (the first by
// dependency order when several are, on different hosts): the one that
// takes the place of the single member of an app of one service when an
// app becomes a stack, or a stack an app of one service.
func rootMember(s *spec.Spec) string {
	for _, m := range s.Members() {
		if m.Public && m.Router.Path == spec.DefaultPath {
			return m.Name
		}
	}
	return ""
}

// counterpart is the member of other that plays the part of member m of
// s: the member of the same name; between an app of one service and a
// stack, the stack's root member and the one member "". ok is false when
// other has no such member.
func counterpart(m string, s, other *spec.Spec) (string, bool) {
	switch {
	case s.IsStack() == other.IsStack():
	case !s.IsStack(): // m == "", other is a stack
		m = rootMember(other)
	case m == rootMember(s): // other is an app of one service
		m = ""
	default:
		return "", false
	}
	_, ok := other.Member(m)
	return m, ok
}

// addressBook hands out the internal addresses of services: one per app,
// service and slot (and one for the live fleet), chosen once, kept in the
// store's meta table and the same across deployments and restarts.
type addressBook struct {
	mu    sync.Mutex
	known map[string]string // meta key → host:port
}

const addressKeyPrefix = "stack-address/"

// Ports of internal addresses: the range no platform gives an instance
// (portalloc.KeptLow to KeptHigh), below the kernel's usual ephemeral range
// (32768 and up), from which the router's outgoing connections get theirs,
// so that nothing takes an address kept for a service that is not bound at
// the moment.
const (
	addressPortLow  = portalloc.KeptLow
	addressPortHigh = portalloc.KeptHigh
)

// serviceAddr returns the internal address of service in slot (or
// liveAddress) of app, allocating it the first time.
func (e *Engine) serviceAddr(ctx context.Context, app, service, slot string) (string, error) {
	b := &e.addrs
	key := addressKeyPrefix + app + "/" + service + "/" + slot
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.known == nil {
		b.known = map[string]string{}
	}
	if a, ok := b.known[key]; ok {
		return a, nil
	}
	v, err := e.st.Meta(ctx, key)
	if err == nil {
		b.known[key] = string(v)
		return string(v), nil
	}
	if !errors.Is(err, store.ErrNotFound) {
		return "", err
	}
	all, err := e.st.MetaPrefix(ctx, addressKeyPrefix)
	if err != nil {
		return "", err
	}
	taken := map[string]bool{}
	for _, a := range all {
		taken[string(a)] = true
	}
	addr, err := freeAddress(taken)
	if err != nil {
		return "", fmt.Errorf("choosing the address of service %s of app %s: %w", service, app, err)
	}
	stored, err := e.st.InitMeta(ctx, key, []byte(addr))
	if err != nil {
		return "", err
	}
	b.known[key] = string(stored)
	return string(stored), nil
}

// freeAddress picks a loopback address no other service has and nothing
// listens on now.
func freeAddress(taken map[string]bool) (string, error) {
	for range 500 {
		port := addressPortLow + rand.IntN(addressPortHigh-addressPortLow)
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		if taken[addr] {
			continue
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		l.Close()
		return addr, nil
	}
	return "", fmt.Errorf("no free port between %d and %d on 127.0.0.1", addressPortLow, addressPortHigh)
}

// serviceURLs returns, for every service of rev, the URL of its address in
// slot: what ${services.NAME.url} and NAME_URL mean in that fleet.
func (e *Engine) serviceURLs(ctx context.Context, rev *revision, slot string) (map[string]string, error) {
	out := map[string]string{}
	if !rev.Spec.IsStack() {
		return out, nil
	}
	for _, m := range rev.Spec.Members() {
		addr, err := e.serviceAddr(ctx, rev.App, m.Name, slot)
		if err != nil {
			return nil, err
		}
		out[m.Name] = "http://" + addr
	}
	return out, nil
}

// serviceCounts are the instance counts of the services of a stack, as
// its spec sets them (nil for an app of one service).
func serviceCounts(s *spec.Spec) map[string]int {
	if !s.IsStack() {
		return nil
	}
	out := map[string]int{}
	for _, m := range s.Members() {
		out[m.Name] = m.Workload.Instances
	}
	return out
}

// expandServices puts the addresses of the stack's services in place of
// ${services.NAME.url} in a command and an env, leaving the rest for the
// platform to expand.
func expandServices(command []string, env map[string]string, urls map[string]string) ([]string, map[string]string) {
	url := func(name string) (string, bool) { u, ok := urls[name]; return u, ok }
	var cmd []string
	if command != nil {
		cmd = make([]string, len(command))
		for i, a := range command {
			cmd[i] = spec.ExpandServices(a, url)
		}
	}
	var out map[string]string
	if env != nil {
		out = make(map[string]string, len(env))
		for k, v := range env {
			out[k] = spec.ExpandServices(v, url)
		}
	}
	return cmd, out
}
