// Package audit says who did something: the API token that asked for an
// action (its name and ID, never its secret) and the address the request
// came from. The API puts the actor of each request in its context; the
// engine and the API write it into the events that record the actions, so
// the event log is the audit trail.
package audit

import (
	"context"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// Actor is who asked for an action. As JSON (an event's "by" field, a
// deployment's started_by) it has the keys token, token_id, remote, and
// forwarded_for and via when set.
type Actor struct {
	// Token and TokenID are the name and ID of the token the request
	// authenticated with.
	Token   string `json:"token"`
	TokenID string `json:"token_id"`
	// Remote is the address of the connection the request came on (the
	// TCP peer). Behind a proxy, it is the proxy's.
	Remote string `json:"remote"`
	// ForwardedFor is the X-Forwarded-For header of the request, as sent:
	// what a proxy (or the client itself) claims the client was. It is
	// kept, not trusted.
	ForwardedFor string `json:"forwarded_for,omitempty"`
	// Via is "dashboard" when the request came from a dashboard session.
	Via string `json:"via,omitempty"`
}

// ViaDashboard is Actor.Via for requests of a dashboard session.
const ViaDashboard = "dashboard"

// maxForwarded bounds what is kept of an X-Forwarded-For header.
const maxForwarded = 256

// FromRequest is the actor of r, authenticated as the token named name with
// ID id.
func FromRequest(r *http.Request, name, id, via string) Actor {
	a := Actor{Token: name, TokenID: id, Remote: remoteIP(r.RemoteAddr), Via: via}
	if f := strings.Join(r.Header.Values("X-Forwarded-For"), ", "); f != "" {
		a.ForwardedFor = clip(f, maxForwarded)
	}
	return a
}

// remoteIP is the IP of a host:port, without the port.
func remoteIP(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = addr
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return ip.Unmap().String()
	}
	return host
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !validCut(s, n) {
		n--
	}
	return s[:n] + "…"
}

// validCut says whether s may be cut before byte i without splitting a
// UTF-8 sequence.
func validCut(s string, i int) bool { return i >= len(s) || s[i]&0xC0 != 0x80 }

// String is the actor as a person reads it: "ci from 127.0.0.1", with
// " via the dashboard" for a dashboard session.
func (a Actor) String() string {
	s := a.Token
	if s == "" {
		s = "token " + a.TokenID
	}
	if a.Remote != "" {
		s += " from " + a.Remote
	}
	if a.Via == ViaDashboard {
		s += " via the dashboard"
	}
	return s
}

// Fields is the actor as an event's "by" field.
func (a Actor) Fields() map[string]any {
	f := map[string]any{"token": a.Token, "token_id": a.TokenID, "remote": a.Remote}
	if a.ForwardedFor != "" {
		f["forwarded_for"] = a.ForwardedFor
	}
	if a.Via != "" {
		f["via"] = a.Via
	}
	return f
}

// FromFields reads an actor back from an event's fields (its "by" field).
func FromFields(fields map[string]any) (Actor, bool) {
	by, ok := fields["by"].(map[string]any)
	if !ok {
		// Events written before actors were recorded name the token only.
		name, _ := fields["by"].(string)
		return Actor{Token: name}, name != ""
	}
	str := func(k string) string { s, _ := by[k].(string); return s }
	a := Actor{Token: str("token"), TokenID: str("token_id"), Remote: str("remote"), ForwardedFor: str("forwarded_for"), Via: str("via")}
	return a, a.Token != "" || a.TokenID != ""
}

type actorKey struct{}

// WithActor returns ctx carrying a.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

// From returns the actor ctx carries; ok is false for work nobody asked
// for by a request (a check, a timeout, the server itself).
func From(ctx context.Context) (Actor, bool) {
	a, ok := ctx.Value(actorKey{}).(Actor)
	return a, ok
}

// Record adds the actor of ctx, if any, to an event: its "by" field, and
// " (by NAME from ADDRESS)" after its message. fields may be nil.
func Record(ctx context.Context, message string, fields map[string]any) (string, map[string]any) {
	a, ok := From(ctx)
	if !ok {
		return message, fields
	}
	if fields == nil {
		fields = map[string]any{}
	}
	fields["by"] = a.Fields()
	return message + " (by " + a.String() + ")", fields
}
