package engine

import (
	"context"
	"sync/atomic"
	"testing"

	"bluegreen/internal/platform"
	"bluegreen/internal/platform/process"
)

// countingPlatform is a real platform that counts the Lists asked of it.
type countingPlatform struct {
	platform.Platform
	lists atomic.Int32
}

func (c *countingPlatform) List(ctx context.Context, app string) ([]platform.Instance, error) {
	c.lists.Add(1)
	return c.Platform.List(ctx, app)
}

// One pass lists an app's instances once, until it launches or stops
// something; outside a pass every look lists again.
func TestAPassListsOnce(t *testing.T) {
	procs, err := process.New(process.Options{StateDir: t.TempDir(), Shim: []string{"/bin/false"}})
	if err != nil {
		t.Fatal(err)
	}
	defer procs.Close()
	cp := &countingPlatform{Platform: procs}
	e := &Engine{plat: platform.NewSet(cp), usesPlat: map[string][]string{"shop": {"process"}, "cart": {"process"}}}
	look := func(ctx context.Context, app string) {
		t.Helper()
		if _, err := e.list(ctx, app); err != nil {
			t.Fatal(err)
		}
	}
	ctx := withListMemo(context.Background())
	look(ctx, "shop")
	look(ctx, "shop")
	look(ctx, "cart")
	if n := cp.lists.Load(); n != 2 {
		t.Fatalf("three looks at two apps in one pass made %d Lists, want 2", n)
	}
	forgetListed(ctx, "shop")
	look(ctx, "shop")
	look(ctx, "cart")
	if n := cp.lists.Load(); n != 3 {
		t.Fatalf("after a launch: %d Lists, want 3 (shop again, cart kept)", n)
	}
	look(context.Background(), "shop")
	look(context.Background(), "shop")
	if n := cp.lists.Load(); n != 5 {
		t.Fatalf("outside a pass: %d Lists, want 5", n)
	}
}
