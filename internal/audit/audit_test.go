package audit

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestActorFromRequest(t *testing.T) {
	r := httptest.NewRequest("POST", "/api/v1/apps/shop/promote", nil)
	r.RemoteAddr = "[::ffff:10.1.2.3]:51234"
	r.Header.Add("X-Forwarded-For", "203.0.113.9")
	r.Header.Add("X-Forwarded-For", "198.51.100.1")
	a := FromRequest(r, "ci", "t-0a1b2c", "")
	want := Actor{Token: "ci", TokenID: "t-0a1b2c", Remote: "10.1.2.3", ForwardedFor: "203.0.113.9, 198.51.100.1"}
	if a != want {
		t.Fatalf("actor %+v, want %+v", a, want)
	}
	if got := a.String(); got != "ci from 10.1.2.3" {
		t.Errorf("String() = %q", got)
	}
	a.Via = ViaDashboard
	if got := a.String(); got != "ci from 10.1.2.3 via the dashboard" {
		t.Errorf("String() = %q", got)
	}
}

// A forwarded header is kept, but bounded, and cut on a character.
func TestForwardedForIsBounded(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.Header.Set("X-Forwarded-For", strings.Repeat("é", 400))
	a := FromRequest(r, "ci", "t-1", "")
	if len(a.ForwardedFor) > maxForwarded+len("…") || !strings.HasSuffix(a.ForwardedFor, "…") {
		t.Fatalf("forwarded_for is %d bytes: %q", len(a.ForwardedFor), a.ForwardedFor)
	}
	if !json.Valid([]byte(`"`+a.ForwardedFor+`"`)) || strings.ContainsRune(a.ForwardedFor, '\uFFFD') {
		t.Fatal("cut inside a character")
	}
}

// Record adds the actor to an event as it is stored, and FromFields reads
// it back from the stored JSON.
func TestRecordAndReadBack(t *testing.T) {
	if msg, f := Record(context.Background(), "promote: approved", nil); msg != "promote: approved" || f != nil {
		t.Fatalf("without an actor: %q %v", msg, f)
	}
	a := Actor{Token: "ci", TokenID: "t-1", Remote: "127.0.0.1", Via: ViaDashboard}
	msg, f := Record(WithActor(context.Background(), a), "promote: approved", map[string]any{"phase": "AwaitingApproval"})
	if msg != "promote: approved (by ci from 127.0.0.1 via the dashboard)" {
		t.Errorf("message %q", msg)
	}
	raw, _ := json.Marshal(f)
	var back map[string]any
	if err := json.Unmarshal(raw, &back); err != nil {
		t.Fatal(err)
	}
	got, ok := FromFields(back)
	if !ok || got != a {
		t.Fatalf("read back %+v %v from %s, want %+v", got, ok, raw, a)
	}
	// Events written before: the token's name alone.
	if got, ok := FromFields(map[string]any{"by": "ci"}); !ok || got.Token != "ci" {
		t.Fatalf("old event: %+v %v", got, ok)
	}
	if _, ok := FromFields(map[string]any{}); ok {
		t.Fatal("an event without by has an actor")
	}
}
