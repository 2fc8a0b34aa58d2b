package notify

import (
	"fmt"
	"time"
)

// item is one notification waiting for its destination.
type item struct {
	dest    destination // how to send it: the URL, format and secret of its revision's spec
	payload Payload
	// sub tells apart the notifications of one event (an app's first
	// deployment is live and succeeded at once).
	sub int
}

// seq is the event the item reports.
func (it item) seq() int64 { return it.payload.Seq }

// mark is the item's place in the log: its event, then its sub.
func (it item) mark() int64 { return it.payload.Seq<<3 | int64(it.sub) }

// seqOf is the event of a mark.
func seqOf(mark int64) int64 { return mark >> 3 }

// queue holds one destination's notifications in the order of the log.
// The head is the one being sent (or waiting for the next attempt); it
// leaves only when it was delivered or dropped. The queue is bounded:
// when it is full, the oldest waiting item (never the one in flight) is
// dropped, so that what people see last is the latest news.
type queue struct {
	key   string
	label string // the destination as logs and events name it
	limit int
	items []item
	// sending: the head is being sent; it is not dropped for room.
	sending bool
	// delivered is the mark of the latest item delivered (or dropped)
	// here: after a restart, items up to it are not sent again.
	delivered int64
	// dropped counts, per app, what was dropped and not yet reported, and
	// dropWhy says why (the latest reason).
	dropped map[string]int
	dropWhy string
	// failing: the last attempt failed; attempt counts the failures in a
	// row.
	failing bool
	attempt int
	wake    chan struct{}
}

func newQueue(key, label string, limit int, delivered int64) *queue {
	return &queue{key: key, label: label, limit: max(limit, 1), delivered: delivered, dropped: map[string]int{}, wake: make(chan struct{}, 1)}
}

// push adds it at the tail, dropping the oldest waiting item when the
// queue is full. It says whether an item was dropped.
func (q *queue) push(it item) (dropped bool) {
	if len(q.items) >= q.limit {
		i := 0
		if q.sending {
			i = 1 // the head is on its way: the next oldest goes
		}
		if i < len(q.items) {
			q.drop(i, fmt.Sprintf("the receiver was not reached while %d more recent notifications waited (--notify-queue)", q.limit))
			dropped = true
		}
	}
	q.items = append(q.items, it)
	select {
	case q.wake <- struct{}{}:
	default:
	}
	return dropped
}

// drop removes item i, counting it for the next report. Only the head's
// drop moves the delivered mark: the mark must never pass a notification
// still waiting, or a restart would skip it.
func (q *queue) drop(i int, why string) {
	it := q.items[i]
	q.items = append(q.items[:i], q.items[i+1:]...)
	q.dropped[it.payload.App]++
	q.dropWhy = why
	if i == 0 {
		q.delivered = max(q.delivered, it.mark())
	}
}

// dropStale drops the waiting items recorded before cutoff, head first,
// while they are older: the log is in time order.
func (q *queue) dropStale(cutoff time.Time, why string) int {
	n := 0
	for len(q.items) > 0 && q.items[0].payload.Time.Before(cutoff) {
		q.drop(0, why)
		n++
	}
	return n
}

// done removes the head once it was delivered.
func (q *queue) done() {
	it := q.items[0]
	q.items = q.items[1:]
	q.delivered = max(q.delivered, it.mark())
}

// oldest is the seq of the first item, or 0 when empty.
func (q *queue) oldest() int64 {
	if len(q.items) == 0 {
		return 0
	}
	return q.items[0].seq()
}

// takeDrops returns the drops not yet reported, and forgets them.
func (q *queue) takeDrops() (map[string]int, string) {
	if len(q.dropped) == 0 {
		return nil, ""
	}
	d, why := q.dropped, q.dropWhy
	q.dropped, q.dropWhy = map[string]int{}, ""
	return d, why
}

// backoff is the wait after the attempt-th failure in a row (1 for the
// first): base doubling up to limit, less up to a fifth by jitter (0 to
// 1), so that destinations that failed together do not retry in step.
func backoff(attempt int, base, limit time.Duration, jitter float64) time.Duration {
	d := base
	for i := 1; i < attempt && d < limit; i++ {
		d *= 2
	}
	d = min(d, limit)
	return d - time.Duration(float64(d)*0.2*jitter)
}
