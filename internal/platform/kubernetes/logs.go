package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"bluegreen/internal/platform"
)

// Logs returns the output of the instance's container, as the kubelet
// keeps it (stdout and stderr reach it through two pipes: the order holds
// within each stream), with the secrets Options.Redact names hidden: the
// last opts.Tail lines (all the kubelet keeps when Tail <= 0), then with
// opts.Follow what it writes next, until ctx ends, the reader is closed or
// the container stops. A container that has not started yet has no output;
// following it waits for it to start. The output of a pod that has exited
// stays readable until Stop deletes the pod.
func (p *Platform) Logs(ctx context.Context, id string, opts platform.LogOptions) (io.ReadCloser, error) {
	if platform.CheckID(id) != nil {
		return nil, fmt.Errorf("logs of instance %q: %w", id, platform.ErrNotFound)
	}
	name := p.podName(id)
	pod, err := p.getPod(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("logs of instance %s: %w", id, err)
	}
	if pod == nil || !p.ours(pod) {
		return nil, fmt.Errorf("logs of instance %s: %w", id, platform.ErrNotFound)
	}
	if !stateOf(pod).started {
		if !opts.Follow || stateOf(pod).state == platform.StateExited {
			return io.NopCloser(strings.NewReader("")), nil
		}
		if err := p.watchPod(ctx, name, func(pod *corev1.Pod) bool {
			return pod == nil || stateOf(pod).started || stateOf(pod).state == platform.StateExited
		}); err != nil {
			return nil, fmt.Errorf("logs of instance %s: %w", id, err)
		}
	}
	redact := func(s string) string { return s }
	if p.opts.Redact != nil {
		redact = p.opts.Redact()
	}
	// The kubelet answers before it reads the log, so the last lines of a
	// follow would be those of when it gets to them, not of the call: the
	// tail is read to its end first, with the kubelet's timestamps, and
	// the follow starts after the last of them.
	var head []byte
	var st *stamps
	if opts.Follow && opts.Tail > 0 {
		st = &stamps{}
		var buf bytes.Buffer
		if err := p.copyLogs(ctx, name, &corev1.PodLogOptions{TailLines: new(int64(opts.Tail)), Timestamps: true},
			&lineWriter{w: &buf, redact: redact, stamped: st}); err != nil {
			return nil, fmt.Errorf("logs of instance %s: %w", id, err)
		}
		head = buf.Bytes()
	}
	lo := &corev1.PodLogOptions{Container: containerName, Follow: opts.Follow}
	if opts.Tail > 0 && !opts.Follow {
		lo.TailLines = new(int64(opts.Tail))
	}
	if st != nil {
		lo.Timestamps = true
		if !st.last.IsZero() {
			// Whole seconds: the lines up to the last one seen are skipped.
			lo.SinceTime = &metav1.Time{Time: st.last}
			st.after = st.last
		}
	}
	// The request lives as long as the reader; only a reader that does
	// not follow is bounded in time.
	var cctx context.Context
	var cancel context.CancelFunc
	if opts.Follow {
		cctx, cancel = context.WithCancel(ctx)
	} else {
		cctx, cancel = p.call(ctx)
	}
	rc, err := p.cs.CoreV1().Pods(p.ns).GetLogs(name, lo).Stream(cctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("logs of instance %s: %w", id, p.apiErr(cctx, "reading the output of pod "+p.ns+"/"+name, err))
	}
	pr, pw := io.Pipe()
	go func() {
		var err error
		if len(head) > 0 {
			_, err = pw.Write(head)
		}
		lw := &lineWriter{w: pw, redact: redact, stamped: st}
		if err == nil {
			_, err = io.Copy(lw, rc)
			if ferr := lw.flush(); err == nil {
				err = ferr
			}
		}
		rc.Close()
		cancel()
		if cctx.Err() != nil && opts.Follow {
			err = nil // the reader was closed or its context ended
		}
		pw.CloseWithError(err) // nil: io.EOF
	}()
	return &logReader{PipeReader: pr, body: rc, cancel: cancel}, nil
}

// copyLogs copies the output of the pod's app, as lo says, to w, within
// the time of one call.
func (p *Platform) copyLogs(ctx context.Context, name string, lo *corev1.PodLogOptions, w *lineWriter) error {
	cctx, cancel := p.call(ctx)
	defer cancel()
	lo.Container = containerName
	rc, err := p.cs.CoreV1().Pods(p.ns).GetLogs(name, lo).Stream(cctx)
	if err != nil {
		return p.apiErr(cctx, "reading the output of pod "+p.ns+"/"+name, err)
	}
	defer rc.Close()
	_, err = io.Copy(w, rc)
	if ferr := w.flush(); err == nil {
		err = ferr
	}
	return err
}

// logReader ends the request when it is closed.
type logReader struct {
	*io.PipeReader
	body   io.Closer
	cancel context.CancelFunc
}

func (r *logReader) Close() error {
	r.PipeReader.Close()
	r.cancel()
	r.body.Close()
	return nil
}

// stamps follows the kubelet's timestamps at the start of each line.
type stamps struct {
	last  time.Time // of the last line seen
	after time.Time // lines up to this one are skipped
}

// line strips the timestamp of a line, and says whether to keep it.
func (s *stamps) line(b []byte) ([]byte, bool) {
	ts, rest, ok := bytes.Cut(b, []byte(" "))
	if !ok {
		return b, true
	}
	t, err := time.Parse(time.RFC3339Nano, string(ts))
	if err != nil {
		return b, true
	}
	if !s.after.IsZero() && !t.After(s.after) {
		return nil, false
	}
	s.last = t
	return rest, true
}

// lineWriter passes whole lines, redacted, to w; a last line without a
// newline is passed on by flush, with one.
type lineWriter struct {
	w       io.Writer
	redact  func(string) string
	stamped *stamps // lines start with the kubelet's timestamp
	partial []byte
}

func (l *lineWriter) Write(b []byte) (int, error) {
	l.partial = append(l.partial, b...)
	i := bytes.LastIndexByte(l.partial, '\n')
	if i < 0 {
		return len(b), nil
	}
	var out []byte
	for line := range bytes.Lines(l.partial[:i+1]) {
		if l.stamped != nil {
			var keep bool
			if line, keep = l.stamped.line(line); !keep {
				continue
			}
		}
		out = append(out, l.redact(string(line))...)
	}
	l.partial = append(l.partial[:0], l.partial[i+1:]...)
	if _, err := l.w.Write(out); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (l *lineWriter) flush() error {
	if len(l.partial) == 0 {
		return nil
	}
	b := append(l.partial, '\n')
	l.partial = nil
	if l.stamped != nil {
		var keep bool
		if b, keep = l.stamped.line(b); !keep {
			return nil
		}
	}
	line := l.redact(string(b))
	_, err := l.w.Write([]byte(line))
	return err
}
