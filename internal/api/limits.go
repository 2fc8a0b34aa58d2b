package api

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"bluegreen/internal/artifact"
	"bluegreen/internal/spec"
)

// Defaults of the upload limits.
const (
	// DefaultMaxUploads is how many uploads are received and unpacked at
	// once. Each may use the bundle store's limits of temporary disk (the
	// archive, then the unpacked tree and its canonical copy), so this
	// bounds the disk all uploads use together.
	DefaultMaxUploads = 2
	// DefaultUploadWait is how long an upload past DefaultMaxUploads
	// waits for a slot. As many may wait as may run; the ones past that,
	// or that waited this long, answer 503 busy with Retry-After.
	DefaultUploadWait = time.Minute
	// maxMessage bounds a revision's message, which the store keeps.
	maxMessage = 4 << 10
	// busyRetryAfter is what a busy answer tells the client to wait.
	busyRetryAfter = 5
)

// uploadPace is how slowly an upload's body may arrive: it must keep
// coming (no gap longer than stall) and average at least minRate bytes a
// second after grace. A stalled or trickling client would otherwise hold
// an upload slot, and its disk, for as long as it likes.
type uploadPace struct {
	grace, stall time.Duration
	minRate      float64
}

var defaultPace = uploadPace{grace: 30 * time.Second, stall: 30 * time.Second, minRate: 32 << 10}

// uploadSlots lets MaxUploads uploads run and as many wait.
type uploadSlots struct {
	run, queue chan struct{}
	wait       time.Duration
}

func newUploadSlots(n int, wait time.Duration) *uploadSlots {
	if n <= 0 {
		n = DefaultMaxUploads
	}
	if wait <= 0 {
		wait = DefaultUploadWait
	}
	return &uploadSlots{run: make(chan struct{}, n), queue: make(chan struct{}, n), wait: wait}
}

// acquire takes a slot, waiting in the queue when there is room in it; the
// error is the answer to give instead.
func (u *uploadSlots) acquire(ctx context.Context) (release func(), err error) {
	release = func() { <-u.run }
	select {
	case u.run <- struct{}{}:
		return release, nil
	default:
	}
	busy := &Error{http.StatusServiceUnavailable, CodeBusy, fmt.Sprintf(
		"the server is receiving %d uploads already; try again in a few seconds", cap(u.run))}
	select {
	case u.queue <- struct{}{}:
		defer func() { <-u.queue }()
	default:
		return nil, busy
	}
	t := time.NewTimer(u.wait)
	defer t.Stop()
	select {
	case u.run <- struct{}{}:
		return release, nil
	case <-t.C:
		return nil, busy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// pacedBody reads an upload's body within its pace, moving the
// connection's read deadline along as bytes arrive. Its errors are
// bodyErrors: the client's doing, never the server's.
type pacedBody struct {
	r     io.Reader
	rc    *http.ResponseController
	pace  uploadPace
	start time.Time
	last  time.Time // when bytes last arrived
	n     int64
	// rateBound says the deadline in force came from the average rate,
	// not from the gap since the last bytes.
	rateBound bool
	// eof: the body has ended, and net/http reads the connection for the
	// next request, with no deadline: none must be set any more.
	eof bool
}

func newPacedBody(w http.ResponseWriter, r io.Reader, pace uploadPace) *pacedBody {
	now := time.Now()
	return &pacedBody{r: r, rc: http.NewResponseController(w), pace: pace, start: now, last: now}
}

func (b *pacedBody) Read(p []byte) (int, error) {
	if b.eof {
		return 0, io.EOF
	}
	byRate := b.start.Add(b.pace.grace + time.Duration(float64(b.n)/b.pace.minRate*float64(time.Second)))
	byGap := b.last.Add(b.pace.stall)
	deadline := byGap
	if b.rateBound = byRate.Before(byGap); b.rateBound {
		deadline = byRate
	}
	// A writer that cannot set deadlines (a test recorder) is read as it is.
	_ = b.rc.SetReadDeadline(deadline)
	n, err := b.r.Read(p)
	if n > 0 {
		b.n += int64(n)
		b.last = time.Now()
	}
	switch {
	case err == io.EOF:
		// The body is in; net/http has lifted the deadline, so that what
		// follows (unpacking, storing) is not cut by one meant for the
		// client.
		b.eof = true
		return n, err
	case err != nil:
		return n, &bodyError{err: err, paced: b}
	}
	return n, nil
}

// bodyError is a failure to read the request's body.
type bodyError struct {
	err   error
	paced *pacedBody
}

func (e *bodyError) Error() string { return e.err.Error() }
func (e *bodyError) Unwrap() error { return e.err }

// answer says what went wrong with the body, to its sender.
func (e *bodyError) answer() *Error {
	var ne interface{ Timeout() bool }
	if errors.As(e.err, &ne) && ne.Timeout() && e.paced != nil {
		b := e.paced
		why := fmt.Sprintf("nothing arrived for %s", b.pace.stall)
		if b.rateBound {
			why = fmt.Sprintf("it arrived slower than %d KiB/s (%d bytes in %s)", int(b.pace.minRate)>>10, b.n, time.Since(b.start).Round(time.Second))
		}
		return &Error{http.StatusRequestTimeout, CodeTimeout, "receiving the upload: " + why + "; the connection was closed"}
	}
	var mbe *http.MaxBytesError
	if errors.As(e.err, &mbe) {
		return &Error{http.StatusRequestEntityTooLarge, CodeTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit)}
	}
	return &Error{http.StatusBadRequest, CodeInvalid, "receiving the upload: " + e.err.Error()}
}

// uploadError is the answer to a bundle the store would not take: the
// client's doing (a body that did not arrive, a bad or oversized archive, a
// spec with problems) or the server's (its files failed, say a full disk),
// which errorOf answers with 507 or 500 and the request log records.
func uploadError(err error) error {
	var be *bodyError
	var errno syscall.Errno
	switch {
	case errors.As(err, &be):
		return be.answer()
	case errors.As(err, &errno) && errno != syscall.ENAMETOOLONG:
		return err
	case errors.Is(err, artifact.ErrLimit):
		return err
	case errors.Is(err, spec.ErrTooLarge):
		return &Error{http.StatusRequestEntityTooLarge, CodeTooLarge, err.Error()}
	}
	return &Error{http.StatusBadRequest, CodeInvalid, err.Error()}
}

// loggedWriter notes the status and the error of an answer, for the
// request's log line.
type loggedWriter struct {
	http.ResponseWriter
	status int
	err    *Error
}

func (w *loggedWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flushes,
// deadlines).
func (w *loggedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// logged logs every answer of 500 or above with what it said: those are
// the server's own failures (a full disk, a broken store), which must not
// be told only to the client.
func (s *Server) logged(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		lw := &loggedWriter{ResponseWriter: w}
		start := time.Now()
		h(lw, r)
		s.Metrics.APIRequest(r.Pattern, r.Method, cmp.Or(lw.status, http.StatusOK), time.Since(start))
		if lw.status < 500 {
			return
		}
		args := []any{"method", r.Method, "path", r.URL.Path, "status", lw.status, "remote", r.RemoteAddr}
		if lw.err != nil {
			args = append(args, "code", lw.err.Code, "err", lw.err.Message)
		}
		s.log().Error("API request failed", args...)
	}
}

func (s *Server) log() *slog.Logger {
	if s.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return s.Logger
}

// retryAfter sets the Retry-After header of a busy answer.
func retryAfter(w http.ResponseWriter, err error) {
	var ae *Error
	if errors.As(err, &ae) && ae.Code == CodeBusy {
		w.Header().Set("Retry-After", strconv.Itoa(busyRetryAfter))
	}
}
