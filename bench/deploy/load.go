package main

import (
	"context"
	"os"
	"strconv"
	"strings"
	"time"
)

// cpuTimes is the machine's busy and total CPU time so far, in clock ticks
// over all cores, from /proc/stat.
type cpuTimes struct{ busy, total uint64 }

func readCPU() cpuTimes {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return cpuTimes{}
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return cpuTimes{}
	}
	var t cpuTimes
	for i, s := range f[1:] {
		n, _ := strconv.ParseUint(s, 10, 64)
		// Fields: user nice system idle iowait irq softirq steal guest
		// guest_nice; guest time is already counted in user and nice.
		switch {
		case i >= 8:
			continue
		case i == 3 || i == 4: // idle, iowait
			t.total += n
		default:
			t.busy += n
			t.total += n
		}
	}
	return t
}

// busyShare is the share of all cores that was busy between two readings.
func busyShare(a, b cpuTimes) float64 {
	if b.total <= a.total {
		return 0
	}
	return float64(b.busy-a.busy) / float64(b.total-a.total)
}

// sampleLoad measures how busy the machine is, before the benchmark starts
// anything: other work on a shared machine skews every figure.
func sampleLoad(ctx context.Context, d time.Duration) float64 {
	a := readCPU()
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
	return busyShare(a, readCPU())
}
