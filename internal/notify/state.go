package notify

import (
	"context"
	"strconv"
	"time"
)

// Keys of the notifier's state among the store's named facts.
const (
	metaResume    = "notify.resume"     // the log is dispatched up to here, and what follows is not yet delivered
	metaDelivered = "notify.delivered." // + destination key: the last event delivered there
)

// resumeEvery bounds how often the position in the log is written when
// nothing was delivered: after a crash, at most this long a stretch of the log is
// read again (what it routes is deduplicated by the delivered marks).
const resumeEvery = 30 * time.Second

// persist writes the resume point and the delivered marks that changed.
// The resume point is where reading the log again after a restart
// starts: the oldest notification still waiting, or else where the log is
// dispatched to. It is written at once when force is set or a mark
// changed, else at most every resumeEvery.
func (n *Notifier) persist(ctx context.Context, force bool) {
	n.persistMu.Lock()
	defer n.persistMu.Unlock()
	n.mu.Lock()
	resume := n.pos
	for _, q := range n.queues {
		if o := q.oldest(); o > 0 {
			resume = min(resume, o-1)
		}
	}
	set := map[string][]byte{}
	var del []string
	marks := map[string]int64{}
	for key, q := range n.queues {
		if seqOf(q.delivered) > resume && n.persisted[key] != q.delivered {
			set[metaDelivered+key] = []byte(strconv.FormatInt(q.delivered, 10))
			marks[key] = q.delivered
		}
	}
	for key, mark := range n.persisted {
		// A mark at or before the resume point is never needed again.
		if seqOf(mark) <= resume {
			del = append(del, metaDelivered+key)
		}
	}
	now := n.o.Now()
	if resume != n.resume && (force || len(set) > 0 || len(del) > 0 || now.Sub(n.resumeWritten) >= resumeEvery) {
		set[metaResume] = []byte(strconv.FormatInt(resume, 10))
	}
	n.mu.Unlock()
	if len(set) == 0 && len(del) == 0 {
		return
	}
	if err := n.o.Store.SetMeta(ctx, set, del); err != nil {
		if ctx.Err() == nil {
			n.log.Error("recording where notifications stand", "err", err)
		}
		return
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	for key, seq := range marks {
		n.persisted[key] = seq
	}
	for _, k := range del {
		key, _ := cutPrefix(k, metaDelivered)
		delete(n.persisted, key)
	}
	if _, ok := set[metaResume]; ok {
		n.resume, n.resumeWritten = resume, now
	}
}
