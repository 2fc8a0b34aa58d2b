package routerproc

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"

	"bluegreen/internal/router"
)

// BenchmarkRouteFile is what saving the table costs a change in a table of a
// thousand apps of ten targets each: the file put together from each app's
// encoding (as Update does), or the whole table encoded again, then
// written, synced and renamed into place; and the file put together alone.
func BenchmarkRouteFile(b *testing.B) {
	tbl := &router.Config{Admin: "unix:/tmp/admin.sock", Production: "127.0.0.1:1", Test: "127.0.0.1:2", RequestIDHeader: "X-Request-Id", Apps: map[string]*router.AppConfig{}}
	for i := range 1000 {
		var ts []string
		for k := range 10 {
			ts = append(ts, fmt.Sprintf("127.0.0.1:%d", 20000+i*10+k))
		}
		tbl.Apps[fmt.Sprintf("s%04d", i)] = &router.AppConfig{Hosts: []string{fmt.Sprintf("s%04d.scale.test", i)}, TestFleet: "green",
			Fleets: map[string]*router.FleetConfig{"blue": {Weight: 100, Targets: ts, Revision: "1"}, "green": {Targets: ts[:1], Revision: "2"}}}
	}
	s := &Supervisor{admin: tbl.Admin}
	top, err := s.settings(tbl)
	if err != nil {
		b.Fatal(err)
	}
	p, err := encodePushed(tbl, top)
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), RoutesFile)
	b.Run("assembled", func(b *testing.B) {
		for b.Loop() {
			js, _ := json.Marshal(tbl.Apps["s0042"])
			p.apps["s0042"] = js
			if err := writeFileAtomic(file, routeFileOf(p), 0o600); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("assembled-not-written", func(b *testing.B) {
		for b.Loop() {
			js, _ := json.Marshal(tbl.Apps["s0042"])
			p.apps["s0042"] = js
			_ = routeFileOf(p)
		}
	})
	b.Run("encoded", func(b *testing.B) {
		for b.Loop() {
			data, err := encodeRouteFile(tbl)
			if err != nil {
				b.Fatal(err)
			}
			if err := writeFileAtomic(file, data, 0o600); err != nil {
				b.Fatal(err)
			}
		}
	})
}
