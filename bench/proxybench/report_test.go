package main

import (
	"strings"
	"testing"
)

func cpu(v float64) *float64 { return &v }

func TestSummarizeTakesMediansAndSumsErrors(t *testing.T) {
	runs := []runResult{
		{Proxy: "haproxy", Connections: 64, wrkResult: wrkResult{ReqPerSec: 100, P50Ms: 1, P99Ms: 9}, ErrorsTotal: 1, ProxyCPU: cpu(20)},
		{Proxy: "haproxy", Connections: 64, wrkResult: wrkResult{ReqPerSec: 300, P50Ms: 3, P99Ms: 7}, ErrorsTotal: 2, ProxyCPU: cpu(10)},
		{Proxy: "haproxy", Connections: 64, wrkResult: wrkResult{ReqPerSec: 200, P50Ms: 2, P99Ms: 8}, ProxyCPU: cpu(30)},
		{Proxy: "haproxy", Connections: 256, wrkResult: wrkResult{ReqPerSec: 999}, ProxyCPU: cpu(99)},
	}
	r, ok := summarize(runs, "haproxy", 64)
	if !ok {
		t.Fatal("no row")
	}
	if r.Rounds != 3 || r.ReqPerSec != 200 || r.P50Ms != 2 || r.P99Ms != 8 || *r.ProxyCPU != 20 || r.Errors != 3 {
		t.Errorf("summarize = %+v", r)
	}
	if _, ok := summarize(runs, "nginx", 64); ok {
		t.Error("row for a proxy without runs")
	}
}

func TestRatiosAgainstHAProxy(t *testing.T) {
	rows := []row{
		{Proxy: "direct", ReqPerSec: 400},
		{Proxy: "haproxy", ReqPerSec: 200, ProxyCPU: cpu(20)},
		{Proxy: "bluegreen", ReqPerSec: 100, ProxyCPU: cpu(30)},
	}
	addRatios(rows)
	if rows[0].CPURatio != nil || *rows[0].RPSRatio != 2 {
		t.Errorf("direct ratios = %v, %v", rows[0].RPSRatio, rows[0].CPURatio)
	}
	if *rows[2].RPSRatio != 0.5 || *rows[2].CPURatio != 1.5 {
		t.Errorf("bluegreen ratios = %v, %v", *rows[2].RPSRatio, *rows[2].CPURatio)
	}
}

func TestJudge(t *testing.T) {
	tables := func(c64, c256 float64, errs int64) []table {
		return []table{
			{Connections: 64, Rows: []row{{Proxy: "bluegreen", ProxyCPU: cpu(c64), Errors: errs}}},
			{Connections: 256, Rows: []row{{Proxy: "bluegreen", ProxyCPU: cpu(c256)}}},
		}
	}
	b := &bench{opts: options{maxCPU: 30, proxies: []string{"haproxy", "bluegreen"}}, failures: map[string]string{}}
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
