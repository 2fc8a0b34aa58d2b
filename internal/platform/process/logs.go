package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"bluegreen/internal/platform"
)

// Logs returns the instance's output: the last opts.Tail lines kept in
// memory (at most RingLines), then, with opts.Follow, what it writes next
// until ctx ends, the reader is closed or the instance is gone. The output
// of an instance that was stopped can still be read from its log files until
// RemoveLogs; an ID with neither a record nor logs is platform.ErrNotFound.
func (p *Platform) Logs(ctx context.Context, id string, opts platform.LogOptions) (io.ReadCloser, error) {
	if checkID(id) != nil {
		return nil, fmt.Errorf("logs of instance %q: %w", id, platform.ErrNotFound)
	}
	t := p.tailerOf(id)
	if t == nil {
		return nil, fmt.Errorf("logs of instance %s: %w", id, platform.ErrNotFound)
	}
	t.fresh(ctx) // a quiet instance's tailer may be between two reads
	snap, f := t.snapshot(opts.Tail, opts.Follow)
	if !opts.Follow {
		return io.NopCloser(bytes.NewReader(snap)), nil
	}
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	// Ending ctx (or closing the reader, which cancels it) also frees a
	// write blocked on a reader that stopped reading.
	context.AfterFunc(ctx, func() { pw.CloseWithError(ctx.Err()) })
	go func() {
		defer cancel()
		if _, err := pw.Write(snap); err != nil {
			return
		}
		defer t.unsubscribe(f)
		for {
			var b []byte
			var ok bool
			select {
			case <-ctx.Done():
				return
			case b, ok = <-f.ch:
			}
			if !ok {
				break
			}
			if _, err := pw.Write(b); err != nil {
				return
			}
		}
		if f.dropped {
			pw.CloseWithError(fmt.Errorf("logs of instance %s: the reader fell behind the output", id))
			return
		}
		pw.Close()
	}()
	return &followReader{PipeReader: pr, cancel: cancel}, nil
}

type followReader struct {
	*io.PipeReader
	cancel context.CancelFunc
}

func (r *followReader) Close() error {
	r.cancel()
	return r.PipeReader.Close()
}

// tailerOf returns the tailer of a recorded instance, or a finished one read
// from the log files of a stopped instance, or nil.
func (p *Platform) tailerOf(id string) *tailer {
	p.mu.Lock()
	t := p.tailers[id]
	p.mu.Unlock()
	if t != nil {
		return t
	}
	if rec, err := p.files.readRecord(id); err == nil {
		return p.ensureTailer(id, rec)
	}
	if _, err := os.Stat(p.files.logPath(id)); err != nil {
		return nil
	}
	t = newTailer(p.files.logPath(id), p.opts.LogKeep, p.opts.RingLines, p.redactor())
	t.read()
	t.end()
	return t
}

// redactor is what hides known secrets in the output of an instance whose
// output the platform starts keeping now.
func (p *Platform) redactor() func(string) string {
	if p.opts.Redact == nil {
		return nil
	}
	return p.opts.Redact()
}

// ensureTailer starts following the log of rec's instance unless that is
// being done already.
func (p *Platform) ensureTailer(id string, rec record) *tailer {
	p.mu.Lock()
	t := p.tailers[id]
	p.mu.Unlock()
	if t != nil {
		return t
	}
	redact := p.redactor() // may read a database: not under the lock
	p.mu.Lock()
	defer p.mu.Unlock()
	if t := p.tailers[id]; t != nil {
		return t
	}
	t = newTailer(p.files.logPath(id), p.opts.LogKeep, p.opts.RingLines, redact)
	p.tailers[id] = t
	if p.closed {
		t.end()
		close(t.done)
		return t
	}
	finished := func() bool { return !alive(rec.ShimPID, rec.ShimStartTicks) } // a zombie is gone
	p.wg.Go(func() { t.run(p.ctx.Done(), p.opts.Poll, finished) })
	return t
}

// finishTailer has the tailer of id read the last output, end its followers
// and go.
func (p *Platform) finishTailer(id string) {
	p.mu.Lock()
	t := p.tailers[id]
	delete(p.tailers, id)
	p.mu.Unlock()
	if t != nil {
		close(t.finish)
		<-t.done
	}
}

// RemoveLogs deletes the log files of an instance that is not running.
func (p *Platform) RemoveLogs(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	unlock := p.lockID(id)
	defer unlock()
	if rec, err := p.files.readRecord(id); err == nil && alive(rec.PID, rec.StartTicks) {
		return fmt.Errorf("removing the logs of instance %s: it is running", id)
	}
	matches, err := filepath.Glob(p.files.logPath(id) + "*")
	if err != nil {
		return err
	}
	for _, m := range matches {
		if m != p.files.logPath(id) && !isRotated(m, p.files.logPath(id)) {
			continue // another ID that begins with this one
		}
		if err := os.Remove(m); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("removing the logs of instance %s: %w", id, err)
		}
	}
	return nil
}

// isRotated reports whether name is base followed by ".N".
func isRotated(name, base string) bool {
	rest, ok := bytes.CutPrefix([]byte(name), []byte(base+"."))
	if !ok || len(rest) == 0 {
		return false
	}
	for _, c := range rest {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
