package auth

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"
)

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestLimiterRefusesAfterTheBurstAndRefills(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	l := NewLimiter(0, 0, c.now)
	for i := range DefaultFailureBurst {
		if ok, _ := l.Allow("10.0.0.1"); !ok {
			t.Fatalf("attempt %d refused", i+1)
		}
		if limited := l.Fail("10.0.0.1"); limited != (i == DefaultFailureBurst-1) {
			t.Fatalf("failure %d: limited = %v", i+1, limited)
		}
	}
	ok, wait := l.Allow("10.0.0.1")
	if ok || wait != DefaultFailureEvery {
		t.Fatalf("after the burst: Allow = %v, %v; want refused for %v", ok, wait, DefaultFailureEvery)
	}
	if ok, _ := l.Allow("10.0.0.2"); !ok {
		t.Fatal("another address is refused too")
	}
	c.advance(DefaultFailureEvery / 2)
	if ok, wait := l.Allow("10.0.0.1"); ok || wait != DefaultFailureEvery/2 {
		t.Fatalf("half way: Allow = %v, %v", ok, wait)
	}
	c.advance(DefaultFailureEvery / 2)
	if ok, _ := l.Allow("10.0.0.1"); !ok {
		t.Fatal("not allowed again after a refill")
	}
	if !l.Fail("10.0.0.1") {
		t.Fatal("the refilled try, failed, does not limit again")
	}
	c.advance(DefaultFailureEvery * DefaultFailureBurst)
	for range DefaultFailureBurst {
		if ok, _ := l.Allow("10.0.0.1"); !ok {
			t.Fatal("the bucket did not refill to the burst")
		}
		l.Fail("10.0.0.1")
	}
	if ok, _ := l.Allow("10.0.0.1"); ok {
		t.Fatal("the bucket refilled past the burst")
	}
}

func TestRemoteKey(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1:5000":          "127.0.0.1",
		"[::1]:5000":              "::/64",
		"[2001:db8:1:2:3::4]:443": "2001:db8:1:2::/64",
		"[::ffff:10.1.2.3]:80":    "10.1.2.3",
		"garbage":                 "garbage",
	} {
		if got := RemoteKey(&http.Request{RemoteAddr: addr}); got != want {
			t.Errorf("RemoteKey(%q) = %q, want %q", addr, got, want)
		}
	}
}

// Many addresses cost bounded memory: past the bound, new ones share a
// bucket, which still limits them.
func TestLimiterMemoryIsBounded(t *testing.T) {
	c := &clock{t: time.Unix(1e9, 0)}
	l := NewLimiter(0, 0, c.now)
	for i := range maxAddresses + 5*DefaultFailureBurst {
		l.Fail(fmt.Sprintf("addr-%d", i))
	}
	if n := len(l.byAddr); n > maxAddresses+1 {
		t.Fatalf("%d buckets, bound %d and the shared one", n, maxAddresses)
	}
	if ok, _ := l.Allow("addr-new"); ok {
		t.Fatal("an address past the bound is not limited by the shared bucket")
	}
	// Once buckets have refilled, they make room again.
	c.advance(DefaultFailureEvery * DefaultFailureBurst)
	l.Fail("addr-later")
	if l.byAddr["addr-later"] == nil {
		t.Fatal("full buckets were not swept")
	}
}

func TestRetryAfter(t *testing.T) {
	for d, want := range map[time.Duration]int{0: 1, time.Millisecond: 1, time.Second: 1, 1001 * time.Millisecond: 2, 6 * time.Second: 6} {
		if got := RetryAfter(d); got != want {
			t.Errorf("RetryAfter(%v) = %d, want %d", d, got, want)
		}
	}
}
