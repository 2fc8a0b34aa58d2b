package routerproc

import (
	"context"
	"time"
)

// Watch loop tuning.
const (
	// goneAfter is how many probes in a row must fail before a router whose
	// pid is unknown is taken for dead; with a known pid, the pid decides.
	goneAfter = 3
	// maxRestartBackoff bounds the wait between failed restarts.
	maxRestartBackoff = 30 * time.Second
	// stuckLogEvery spaces the warnings about a router that is there but silent.
	stuckLogEvery = 30 * time.Second
)

// watch probes the router every WatchInterval and starts a new one from
// routes.yaml when the old one is gone. A router that is alive but does not
// answer is only reported: killing it could cut requests it is still serving,
// and a second router could not bind its socket and listeners anyway.
func (s *Supervisor) watch(ctx context.Context) {
	defer close(s.done)
	tick := time.NewTicker(s.opts.WatchInterval)
	defer tick.Stop()
	var failures int
	var nextTry, lastStuckLog time.Time
	backoff := s.opts.WatchInterval
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if err := capLog(s.logs, s.opts.MaxLogBytes); err != nil {
			s.log.Warn("rotating the router log", "err", err)
		}
		_, err := s.probe(ctx)
		if err == nil {
			failures = 0
			backoff = s.opts.WatchInterval
			continue
		}
		if ctx.Err() != nil {
			return
		}
		failures++
		pid := s.Pid()
		if pid > 0 && routerAlive(pid, s.routes) || pid == 0 && failures < goneAfter {
			if time.Since(lastStuckLog) >= stuckLogEvery {
				s.log.Warn("router does not answer but is still running", "pid", pid, "err", err)
				lastStuckLog = time.Now()
			}
			continue
		}
		if time.Now().Before(nextTry) {
			continue
		}
		s.log.Error("router is gone; starting it again from the route file", "pid", pid, "err", err, "routes", s.routes)
		if err := s.restart(ctx); err != nil {
			s.log.Error("restarting the router failed", "err", err, "retry_in", backoff.String())
			nextTry = time.Now().Add(backoff)
			backoff = min(2*backoff, maxRestartBackoff)
			continue
		}
		failures = 0
		backoff = s.opts.WatchInterval
		s.notifyRestart()
	}
}

func (s *Supervisor) restart(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	// Connections pooled to the dead process would only fail.
	s.client.CloseIdle()
	adopted, err := s.ensure(ctx)
	if err == nil && adopted {
		s.log.Info("another supervisor had started the router already")
	}
	return err
}

// notifyRestart calls OnRestart before it signals Restarted, so a receiver of
// the signal sees the callback's work done.
func (s *Supervisor) notifyRestart() {
	if s.opts.OnRestart != nil {
		s.opts.OnRestart()
	}
	select {
	case s.restarted <- struct{}{}:
	default:
	}
}
