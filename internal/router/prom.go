package router

import (
	"github.com/prometheus/client_golang/prometheus"
)

// collector exposes the router's counters to Prometheus at scrape time, so the
// request path only touches its own atomic counters.
type collector struct{ r *Router }

var (
	targetLabels = []string{"app", "fleet", "revision", "target"}
	descRequests = prometheus.NewDesc("bluegreen_router_requests_total",
		"Requests answered, by status class.", append(targetLabels, "class"), nil)
	descDuration = prometheus.NewDesc("bluegreen_router_request_duration_seconds",
		"Time from receiving a request to the end of its response (to the switch for upgrades).", targetLabels, nil)
	descInFlight = prometheus.NewDesc("bluegreen_router_in_flight_requests",
		"Requests in flight, upgraded connections and streams included.", targetLabels, nil)
	descUpgraded = prometheus.NewDesc("bluegreen_router_upgraded_connections",
		"Open upgraded connections (WebSocket).", targetLabels, nil)
	descStreaming = prometheus.NewDesc("bluegreen_router_streaming_responses",
		"Responses being streamed (SSE, unknown length).", targetLabels, nil)
	descBytes = prometheus.NewDesc("bluegreen_router_bytes_total",
		"Body bytes, in from clients and out to clients.", append(targetLabels, "direction"), nil)
	descTimeouts = prometheus.NewDesc("bluegreen_router_timeouts_total",
		"Requests the target did not answer within the app's timeout (answered 504).", targetLabels, nil)
	descHealthy = prometheus.NewDesc("bluegreen_router_target_healthy",
		"1 when the target takes new requests (healthy, not suspect, not fenced).", targetLabels, nil)
	fleetLabels       = []string{"app", "fleet", "revision"}
	descFleetRequests = prometheus.NewDesc("bluegreen_router_fleet_requests_total",
		"Requests routed to the fleet, by status class; includes those no target answered (502, 503).", append(fleetLabels, "class"), nil)
	descFleetDuration = prometheus.NewDesc("bluegreen_router_fleet_request_duration_seconds",
		"Time from receiving a request routed to the fleet to the end of its response.", fleetLabels, nil)
	descWeight = prometheus.NewDesc("bluegreen_router_fleet_weight",
		"The fleet's weight in the routing table.", []string{"app", "fleet", "revision"}, nil)
	descGeneration = prometheus.NewDesc("bluegreen_router_table_generation",
		"Generation of the running routing table.", nil, nil)
	descUnrouted = prometheus.NewDesc("bluegreen_router_unrouted_requests_total",
		"Requests no fleet could take (unknown host, nothing healthy).", nil, nil)
)

func (c collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descRequests, descDuration, descInFlight, descUpgraded, descStreaming,
		descBytes, descTimeouts, descHealthy, descFleetRequests, descFleetDuration, descWeight, descGeneration, descUnrouted} {
		ch <- d
	}
}

func (c collector) Collect(ch chan<- prometheus.Metric) {
	tbl := c.r.table.Load()
	ch <- prometheus.MustNewConstMetric(descGeneration, prometheus.GaugeValue, float64(tbl.gen))
	ch <- prometheus.MustNewConstMetric(descUnrouted, prometheus.CounterValue, float64(c.r.unrouted.Load()))
	now := nanotime()
	for _, a := range tbl.apps {
		for _, f := range a.fleets {
			ch <- prometheus.MustNewConstMetric(descWeight, prometheus.GaugeValue, float64(f.weight), a.name, f.name, f.revision)
			for cl := 1; cl < 6; cl++ {
				ch <- prometheus.MustNewConstMetric(descFleetRequests, prometheus.CounterValue, float64(f.stats.classes[cl].Load()), a.name, f.name, f.revision, classNames[cl])
			}
			fcount, fbuckets := f.stats.promBuckets()
			ch <- prometheus.MustNewConstHistogram(descFleetDuration, fcount, float64(f.stats.latSumNs.Load())/1e9, fbuckets, a.name, f.name, f.revision)
			for i, t := range f.targets {
				lv := []string{a.name, f.name, f.revision, t.addr}
				m := t.stats
				for cl := 1; cl < 6; cl++ {
					ch <- prometheus.MustNewConstMetric(descRequests, prometheus.CounterValue, float64(m.classes[cl].Load()), append(lv, classNames[cl])...)
				}
				count, buckets := m.promBuckets()
				ch <- prometheus.MustNewConstHistogram(descDuration, count, float64(m.latSumNs.Load())/1e9, buckets, lv...)
				ch <- prometheus.MustNewConstMetric(descInFlight, prometheus.GaugeValue, float64(m.inflight.Load()), lv...)
				ch <- prometheus.MustNewConstMetric(descUpgraded, prometheus.GaugeValue, float64(m.upgraded.Load()), lv...)
				ch <- prometheus.MustNewConstMetric(descStreaming, prometheus.GaugeValue, float64(m.streaming.Load()), lv...)
				ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(m.in.Load()), append(lv, "in")...)
				ch <- prometheus.MustNewConstMetric(descBytes, prometheus.CounterValue, float64(m.out.Load()), append(lv, "out")...)
				ch <- prometheus.MustNewConstMetric(descTimeouts, prometheus.CounterValue, float64(m.timeouts.Load()), lv...)
				healthy := 0.0
				if f.takes(i, now) {
					healthy = 1
				}
				ch <- prometheus.MustNewConstMetric(descHealthy, prometheus.GaugeValue, healthy, lv...)
			}
		}
	}
}

// promBuckets folds the fine latency buckets into one bucket per power of two,
// cumulative as Prometheus wants them.
func (m *metrics) promBuckets() (uint64, map[float64]uint64) {
	out := make(map[float64]uint64, latBuckets/subBuckets+1)
	var cum uint64
	for i := 0; i < latBuckets-1; i++ {
		cum += m.lat[i].Load()
		if i == 0 || i%subBuckets == 0 {
			out[bucketUpper(i)] = cum
		}
	}
	cum += m.lat[latBuckets-1].Load()
	return cum, out
}
