// Package idlock serializes the operations a platform runs on one instance
// ID (Launch, Stop, the start of Logs), while operations on other IDs go on.
package idlock

import "sync"

// Locks is a set of mutexes keyed by instance ID; the zero value is ready.
// A mutex exists only while someone holds or waits for it.
type Locks struct {
	mu    sync.Mutex
	locks map[string]*entry
}

type entry struct {
	sync.Mutex
	refs int
}

// Lock locks id and returns the function that unlocks it.
func (l *Locks) Lock(id string) (unlock func()) {
	l.mu.Lock()
	if l.locks == nil {
		l.locks = map[string]*entry{}
	}
	e := l.locks[id]
	if e == nil {
		e = &entry{}
		l.locks[id] = e
	}
	e.refs++
	l.mu.Unlock()
	e.Lock()
	return func() {
		e.Unlock()
		l.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(l.locks, id)
		}
		l.mu.Unlock()
	}
}
