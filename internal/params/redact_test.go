package params

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"bluegreen/internal/store"
)

const secret = "hunter2-very-secret"

func TestSecureValuesNeverPrint(t *testing.T) {
	ctx := context.Background()
	ps, st := newTest(t)
	if _, err := ps.Put(ctx, "/shop/API_KEY", TypeSecure, secret, WriteOptions{CreatedBy: "alice"}); err != nil {
		t.Fatal(err)
	}
	if _, err := ps.Put(ctx, "/shop/MODE", TypeString, "fast", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	p, err := ps.Get(ctx, "/shop/API_KEY", 0)
	if err != nil {
		t.Fatal(err)
	}
	env, err := ps.Resolve(ctx, map[string]int64{"/shop/API_KEY": 1, "/shop/MODE": 1})
	if err != nil {
		t.Fatal(err)
	}
	if p.Value.Reveal() != secret || env["API_KEY"].Reveal() != secret {
		t.Fatal("Reveal does not return the secret")
	}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%10s", "%T %v"} {
		for _, x := range []any{p, &p, p.Value, env, []Value{p.Value}, struct{ V Value }{p.Value}} {
			outputs = append(outputs, fmt.Sprintf(verb, x))
		}
	}
	outputs = append(outputs, fmt.Sprint(p, env), fmt.Sprintln(p.Value), p.Value.String(), p.Value.GoString())
	for _, x := range []any{p, env, p.Value, map[string]any{"v": p.Value}} {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		outputs = append(outputs, string(b))
	}
	var logs bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&logs, nil), slog.NewTextHandler(&logs, nil)} {
		l := slog.New(h)
		l.Info("param", "param", p, "value", p.Value, "env", env)
		l.Info("group", slog.Group("g", slog.Any("v", p.Value)))
		l.Info(fmt.Sprint(p.Value))
	}
	outputs = append(outputs, logs.String())

	// The value goes into an event as a field: it is stored redacted.
	if _, err := st.AppendEvent(ctx, store.Event{App: "shop", Kind: "launch", Message: fmt.Sprint(env),
		Fields: map[string]any{"env": env, "value": p.Value}}); err != nil {
		t.Fatal(err)
	}
	evs, err := st.ListEvents(ctx, store.EventFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) < 3 {
		t.Fatalf("expected the param writes to be in the event log, got %d events", len(evs))
	}
	for _, e := range evs {
		b, _ := json.Marshal(e)
		outputs = append(outputs, string(b))
	}

	for _, out := range outputs {
		if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) ||
			strings.Contains(strings.ToLower(out), strings.ToLower(fmt.Sprintf("%X", secret))) {
			t.Errorf("secret leaked: %s", out)
		}
	}
	if !strings.Contains(logs.String(), Redacted) {
		t.Errorf("logs do not show the redaction marker: %s", logs.String())
	}
	// Plain values still print as themselves.
	if got := fmt.Sprintf("%v %q", env["MODE"], env["MODE"]); got != `fast "fast"` {
		t.Errorf("string value prints as %s", got)
	}
}

func TestRedactor(t *testing.T) {
	r := NewRedactor("hunter2", "hunter2-very-secret", "abc", "", "-----BEGIN-----\r\nAAAABBBB\r\n-----END-----")
	for in, want := range map[string]string{
		"x=hunter2-very-secret y=hunter2": "x=[redacted] y=[redacted]",
		"abc is too short to hide":        "abc is too short to hide",
		"key: AAAABBBB\n":                 "key: [redacted]\n",
		"nothing secret":                  "nothing secret",
	} {
		if got := r.Redact(in); got != want {
			t.Errorf("Redact(%q) = %q, want %q", in, got, want)
		}
	}
	// A tail that begins in the middle of a secret loses its first line.
	tail := "ry-secret and more\nnext hunter2\n"
	if got := r.Redact(tail[r.TailStart(tail):]); got != "next [redacted]\n" {
		t.Errorf("the safe tail of %q is %q", tail, got)
	}
	tail = "ry-secret without a line break, then some more words, then hunter2"
	if got := r.Redact(tail[r.TailStart(tail):]); strings.Contains(got, "ry-secret") || !strings.HasSuffix(got, "[redacted]") {
		t.Errorf("the safe tail of %q is %q", tail, got)
	}
	if n := NewRedactor().TailStart(tail); n != 0 {
		t.Errorf("with no secrets, the tail starts at %d", n)
	}
	var none *Redactor
	if none.Redact("hunter2") != "hunter2" || NewRedactor().Redact("hunter2") != "hunter2" {
		t.Error("an empty redactor changes text")
	}
}

// The store's redactor knows every secure value it holds: older versions
// and deleted params too (a running revision may pin them), not plain ones.
func TestStoreRedactor(t *testing.T) {
	ctx := context.Background()
	ps, _ := newTest(t)
	put := func(name string, typ Type, v string) {
		if _, err := ps.Put(ctx, name, typ, v, WriteOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	put("/shop/API_KEY", TypeSecure, "old-api-key")
	put("/shop/API_KEY", TypeSecure, "new-api-key")
	put("/shop/MODE", TypeString, "plain-mode")
	put("/blog/TOKEN", TypeSecure, "deleted-token")
	if _, err := ps.Delete(ctx, "/blog/TOKEN", WriteOptions{}); err != nil {
		t.Fatal(err)
	}
	r, err := ps.Redactor(ctx, "bg_admin_token")
	if err != nil {
		t.Fatal(err)
	}
	got := r.Redact("old-api-key new-api-key plain-mode deleted-token bg_admin_token")
	if want := "[redacted] [redacted] plain-mode [redacted] [redacted]"; got != want {
		t.Fatalf("Redact = %q, want %q", got, want)
	}
}
