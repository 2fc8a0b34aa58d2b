package main

import (
	"strings"
	"testing"
)

func cpu(v float64) *float64 { return &v }

func TestSummarizeTakesMediansAndSumsErrors(t *testing.T) {
	runs := []runResult{
		{Workload: "get", Proxy: "haproxy", Connections: 64, wrkResult: wrkResult{ReqPerSec: 100, P50Ms: 1, P99Ms: 9}, ErrorsTotal: 1, ProxyCPU: cpu(20)},
		{Workload: "get", Proxy: "haproxy", Connections: 64, wrkResult: wrkResult{ReqPerSec: 300, P50Ms: 3, P99Ms: 7}, ErrorsTotal: 2, ProxyCPU: cpu(10)},
		{Workload: "get", Proxy: "haproxy", Connections: 64, wrkResult: wrkResult{ReqPerSec: 200, P50Ms: 2, P99Ms: 8}, ProxyCPU: cpu(30)},
		{Workload: "get", Proxy: "haproxy", Connections: 256, wrkResult: wrkResult{ReqPerSec: 999}, ProxyCPU: cpu(99)},
		{Workload: "post", Proxy: "haproxy", Connections: 64, wrkResult: wrkResult{ReqPerSec: 999}, ProxyCPU: cpu(99)},
	}
	r, ok := summarize(runs, "get", "haproxy", 64)
	if !ok {
		t.Fatal("no row")
	}
	if r.Rounds != 3 || r.ReqPerSec != 200 || r.P50Ms != 2 || r.P99Ms != 8 || *r.ProxyCPU != 20 || r.Errors != 3 {
		t.Errorf("summarize = %+v", r)
	}
	if _, ok := summarize(runs, "get", "nginx", 64); ok {
		t.Error("row for a proxy without runs")
	}
}

func TestRatiosAgainstHAProxy(t *testing.T) {
	rows := []row{
		{Proxy: "direct", ReqPerSec: 400},
		{Proxy: "haproxy", ReqPerSec: 200, ProxyCPU: cpu(20), P99Ms: 4},
		{Proxy: "bluegreen", ReqPerSec: 100, ProxyCPU: cpu(30), P99Ms: 2},
	}
	addRatios(rows)
	if rows[0].CPURatio != nil || *rows[0].RPSRatio != 2 {
		t.Errorf("direct ratios = %v, %v", rows[0].RPSRatio, rows[0].CPURatio)
	}
	if *rows[2].RPSRatio != 0.5 || *rows[2].CPURatio != 1.5 || *rows[2].P99Ratio != 0.5 {
		t.Errorf("bluegreen ratios = %v, %v, %v", *rows[2].RPSRatio, *rows[2].CPURatio, *rows[2].P99Ratio)
	}
}

func TestJudge(t *testing.T) {
	tables := func(c64, c256 float64, errs int64) []table {
		return []table{
			{Workload: "get", Connections: 64, Rows: []row{{Proxy: "bluegreen", ProxyCPU: cpu(c64), Errors: errs}}},
			{Workload: "get", Connections: 256, Rows: []row{{Proxy: "bluegreen", ProxyCPU: cpu(c256)}}},
			// The µs target is for GETs; a POST's errors still count.
			{Workload: "post", Connections: 64, Rows: []row{{Proxy: "bluegreen", ProxyCPU: cpu(99)}}},
		}
	}
	b := &bench{opts: options{maxCPU: 30, workloads: []string{"get", "post"}, proxies: []string{"haproxy", "bluegreen"}}, failures: map[string]string{}}
	if got := b.judge(tables(25, 30, 0)); !got.Met || !strings.Contains(got.Summary, " MET (") {
		t.Errorf("within target: %+v", got)
	}
	if got := b.judge(tables(25, 31, 0)); got.Met {
		t.Errorf("over target at 256 connections counted as met: %+v", got)
	}
	if got := b.judge(tables(25, 25, 1)); got.Met {
		t.Errorf("an error counted as met: %+v", got)
	}
	if got := b.judge(nil); got.Met || got.Measured {
		t.Errorf("nothing measured counted as met: %+v", got)
	}
	b.failures["bluegreen"] = "did not start: not implemented"
	if got := b.judge(nil); got.Met || !strings.Contains(got.Summary, "not implemented") {
		t.Errorf("failure not reported: %+v", got)
	}
}

func TestJudgeRatio(t *testing.T) {
	tables := func(ratio, p99 float64) []table {
		bg := func(r, p float64) row { return row{Proxy: "bluegreen", CPURatio: cpu(r), P99Ratio: cpu(p)} }
		return []table{
			{Workload: "get", Connections: 64, Rows: []row{bg(0.6, 0.9)}},
			{Workload: "post", Connections: 256, Rows: []row{bg(ratio, p99)}},
		}
	}
	b := &bench{opts: options{maxRatio: 0.7}, failures: map[string]string{}}
	if got := b.judgeRatio(tables(0.7, 1)); !got.Met || !strings.Contains(got.Summary, "post 256: 0.70x CPU") {
		t.Errorf("within target: %+v", got)
	}
	if got := b.judgeRatio(tables(0.71, 1)); got.Met {
		t.Errorf("CPU over target counted as met: %+v", got)
	}
	if got := b.judgeRatio(tables(0.5, 1.2)); got.Met {
		t.Errorf("p99 worse than HAProxy's counted as met: %+v", got)
	}
	if got := b.judgeRatio(append(tables(0.5, 1), table{Workload: "get", Connections: 256})); got.Met {
		t.Errorf("a table without the router counted as met: %+v", got)
	}
}
