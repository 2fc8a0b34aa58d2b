package router

import (
	"context"
	"testing"
	"time"
)

// TestShutdownRightAfterStart stops routers the moment they start: Serve may
// not have run yet, and shutdown must still end.
func TestShutdownRightAfterStart(t *testing.T) {
	for range 50 {
		r := New(Options{})
		cfg := oneFleet("127.0.0.1:1")
		cfg.Production = freeAddr(t)
		if _, err := r.Apply(cfg); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := r.Shutdown(ctx)
		cancel()
		if err != nil {
			t.Fatalf("shutdown right after start: %v", err)
		}
	}
}
