package certs

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/acme"

	"bluegreen/internal/router"
)

// A rate-limit answer waits as long as the authority asks and says so in
// its own event; other failures wait longer each time, up to RetryMax.
func TestFailedOrdersWaitAndSaySo(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := router.New(router.Options{})
	t.Cleanup(func() { r.Shutdown(context.Background()) })
	ev := &events{}
	m, err := New(Options{Dir: t.TempDir(), Router: inProcess{r}, Events: ev.add, RetryMin: time.Minute, RetryMax: 10 * time.Minute,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	m.hosts["shop.test"] = &hostState{HostStatus: HostStatus{App: "shop", Host: "shop.test"}}
	for i, want := range []time.Duration{time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute, 10 * time.Minute} {
		m.failed(context.Background(), "shop.test", "shop", errors.New("connection refused"))
		if got := status(m, "shop.test").NextTry.Sub(now); got != want {
			t.Errorf("failure %d waits %s, want %s", i+1, got, want)
		}
	}
	limited := &acme.Error{StatusCode: http.StatusTooManyRequests, ProblemType: "urn:ietf:params:acme:error:rateLimited",
		Detail: "too many certificates already issued", Header: http.Header{"Retry-After": {"7200"}}}
	m.failed(context.Background(), "shop.test", "shop", limited)
	s := status(m, "shop.test")
	if s.State != "failed" || s.NextTry.Sub(now) != 2*time.Hour || !strings.Contains(s.Error, "too many certificates") {
		t.Fatalf("rate-limited status: %+v", s)
	}
	if k := ev.kinds("shop.test"); k[len(k)-1] != "certificate_rate_limited" {
		t.Fatalf("events: %v", k)
	}
}
