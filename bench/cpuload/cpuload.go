// Package cpuload reads how busy the whole machine is, from /proc/stat, so
// that a benchmark can say how much of the machine others used while it
// ran: on a shared machine that skews every figure.
package cpuload

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// Times is the machine's busy and total CPU time so far, in clock ticks
// over all cores.
type Times struct{ Busy, Total uint64 }

// Read reads the machine's CPU times (zero when /proc/stat cannot be read).
func Read() Times {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return Times{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return Times{}
	}
	var t Times
	for i, s := range f[1:] {
		n, _ := strconv.ParseUint(s, 10, 64)
		// Fields: user nice system idle iowait irq softirq steal guest
		// guest_nice; guest time is already counted in user and nice.
		switch {
		case i >= 8:
			continue
		case i == 3 || i == 4: // idle, iowait
			t.Total += n
		default:
			t.Busy += n
			t.Total += n
		}
	}
	return t
}

// BusyShare is the share of all cores that was busy between two readings.
func BusyShare(a, b Times) float64 {
	if b.Total <= a.Total {
		return 0
	}
	return float64(b.Busy-a.Busy) / float64(b.Total-a.Total)
}

// Sample measures the busy share over d (or until ctx ends).
func Sample(ctx context.Context, d time.Duration) float64 {
	a := Read()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return BusyShare(a, Read())
}
