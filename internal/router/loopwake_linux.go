//go:build linux

package router

// A parked loop waits in Go's poller (loop.wait), and Go keeps one thread
// waiting there. When the poller wakes that thread for one loop, the thread
// goes on to run that loop, and no other takes its place in the poller until
// one runs out of work. While the woken loop stays busy, the events of a loop
// still parked would be noticed only by the runtime's monitor thread, which
// polls when nothing else has for 10 ms: a stall of every connection of that
// loop, which showed under load as a p99 latency several times HAProxy's.
//
// So a loop the poller has woken, if another loop is parked, starts an empty
// goroutine: the runtime then wakes an idle thread (there is one, since a loop
// is parked), which finds no work and waits in the poller. It costs a thread
// wake-up per wake-up of a loop, not per request.

// keepPolling runs when a loop has been woken from Go's poller.
func (e *loopEngine) keepPolling() {
	for _, lp := range e.loops {
		if lp.parked.Load() {
			go func() {}()
			return
		}
	}
}
