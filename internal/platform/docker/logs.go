package docker

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/client"

	"bluegreen/internal/platform"
)

// Logs returns the container's output, stdout and stderr in the order the
// engine received them, with the secrets Options.Redact names hidden: the
// last opts.Tail lines (all the engine keeps when Tail <= 0), then with
// opts.Follow what it writes next, until ctx ends, the reader is closed or
// the container stops. The output of a container that has exited stays
// readable until Stop removes it.
func (p *Platform) Logs(ctx context.Context, id string, opts platform.LogOptions) (io.ReadCloser, error) {
	if platform.CheckID(id) != nil {
		return nil, fmt.Errorf("logs of instance %q: %w", id, platform.ErrNotFound)
	}
	c, ok, err := p.inspect(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("logs of instance %s: %w", id, err)
	}
	if !ok {
		return nil, fmt.Errorf("logs of instance %s: %w", id, platform.ErrNotFound)
	}
	tail := "all"
	if opts.Tail > 0 {
		tail = strconv.Itoa(opts.Tail)
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
	rc, err := p.cli.ContainerLogs(cctx, c.ID, client.ContainerLogsOptions{
		ShowStdout: true, ShowStderr: true, Follow: opts.Follow, Tail: tail,
	})
	if err != nil {
		cancel()
		return nil, fmt.Errorf("logs of instance %s: %w", id, p.engineErr(cctx, "reading the container's output", err))
	}
	redact := func(s string) string { return s }
	if p.opts.Redact != nil {
		redact = p.opts.Redact()
	}
	pr, pw := io.Pipe()
	go func() {
		lw := &lineWriter{w: pw, redact: redact}
		// One writer for both streams keeps their lines in order.
		_, err := stdcopy.StdCopy(lw, lw, rc)
		if ferr := lw.flush(); err == nil {
			err = ferr
		}
		rc.Close()
		cancel()
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
