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
