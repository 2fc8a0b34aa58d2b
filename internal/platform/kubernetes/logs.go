package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"

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
			st := stateOf(pod)
			return pod == nil || st.started || st.state == platform.StateExited
		}); err != nil {
			return nil, fmt.Errorf("logs of instance %s: %w", id, err)
		}
	}
	lo := &corev1.PodLogOptions{Container: containerName, Follow: opts.Follow}
	if opts.Tail > 0 {
		tail := int64(opts.Tail)
		lo.TailLines = &tail
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
	redact := func(s string) string { return s }
	if p.opts.Redact != nil {
		redact = p.opts.Redact()
	}
	pr, pw := io.Pipe()
	go func() {
		lw := &lineWriter{w: pw, redact: redact}
		_, err := io.Copy(lw, rc)
		if ferr := lw.flush(); err == nil {
			err = ferr
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

// lineWriter passes whole lines, redacted, to w; a last line without a
// newline is passed on by flush, with one.
type lineWriter struct {
	w       io.Writer
	redact  func(string) string
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
	line := l.redact(string(l.partial) + "\n")
	l.partial = nil
	_, err := l.w.Write([]byte(line))
	return err
}
