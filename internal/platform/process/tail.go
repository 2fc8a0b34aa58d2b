package process

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"
)

// tailer follows one instance's log file into a ring of its last lines and
// to the Logs readers that follow it. It reads the file the shim writes, so
// it can start at any time (after a server restart it rebuilds the ring from
// the end of the files) and lose nothing the shim wrote.
type tailer struct {
	path string
	keep int
	// redact hides known secrets in each line before anyone reads it; the
	// files on disk, readable by the server only, keep the output as is.
	redact func(string) string

	mu      sync.Mutex
	ring    ring
	partial []byte // the start of a line not yet ended
	subs    map[*follower]bool
	ended   bool // no more output will come

	// Only the goroutine that runs the tailer touches these.
	f   *os.File
	ino uint64

	finish chan struct{}      // asks for a last read, then the end
	poke   chan chan struct{} // asks for a read now, closing the channel sent once done
	done   chan struct{}      // closed when the tailer has ended
}

// idlePoll is the longest a tailer waits between two reads while its
// instance writes nothing and nobody follows it: a server with thousands
// of quiet instances would otherwise wake thousands of times every poll.
// Nothing is late for it: Logs has the tailer read first (fresh), a
// follower brings the reads back to every poll, and a read catches up
// across rotations (the ring keeps only the last lines anyway).
const idlePoll = 30 * time.Second

func newTailer(path string, keep, lines int, redact func(string) string) *tailer {
	if redact == nil {
		redact = func(s string) string { return s }
	}
	t := &tailer{path: path, keep: keep, redact: redact, ring: newRing(lines), subs: map[*follower]bool{},
		finish: make(chan struct{}), poke: make(chan chan struct{}), done: make(chan struct{})}
	t.rebuild()
	return t
}

// rebuild fills the ring from the end of the current file and, if that has
// too few lines, of the last rotated one, and positions the tailer at the end.
func (t *tailer) rebuild() {
	var lines []string
	if f, err := os.Open(t.path); err == nil {
		if st, err := f.Stat(); err == nil {
			ls, partial := lastLines(f, st.Size(), t.ring.cap())
			lines, t.partial = ls, []byte(partial)
			if _, err := f.Seek(st.Size(), io.SeekStart); err == nil {
				t.f, t.ino = f, inode(st)
			}
		}
		if t.f == nil {
			f.Close()
		}
	}
	if need := t.ring.cap() - len(lines); need > 0 {
		if f, err := os.Open(t.path + ".1"); err == nil {
			if st, err := f.Stat(); err == nil {
				older, partial := lastLines(f, st.Size(), need)
				if partial != "" { // a line split by rotation
					if len(lines) > 0 {
						older, lines = append(older, partial+lines[0]), lines[1:]
					} else {
						t.partial = append([]byte(partial), t.partial...)
					}
				}
				lines = append(older, lines...)
			}
			f.Close()
		}
	}
	for _, l := range lines {
		t.ring.add(t.redact(l))
	}
}

// run reads new output every poll until finished reports that the shim is
// gone (then it reads the rest), finish is closed, or stop is closed. While
// nothing comes and nobody follows, the reads thin out to one every
// idlePoll; output, a follower or a poke brings them back to every poll.
func (t *tailer) run(stop <-chan struct{}, poll time.Duration, finished func() bool) {
	defer close(t.done)
	defer t.end()
	pause := poll
	next := time.NewTimer(pause)
	defer next.Stop()
	for {
		var asked chan struct{}
		select {
		case <-stop:
			return
		case <-t.finish:
			t.read()
			return
		case asked = <-t.poke:
		case <-next.C:
		}
		// Look at the shim first: output it wrote before exiting is then
		// certainly in the file for the read below.
		last := finished()
		n := t.read()
		if asked != nil {
			close(asked)
		}
		if last {
			return
		}
		if n > 0 || asked != nil || t.followed() {
			pause = poll
		} else {
			pause = min(pause*2, max(idlePoll, poll))
		}
		next.Reset(pause)
	}
}

// fresh has the tailer read what has been written so far, and returns
// once it has (or the tailer has ended, or ctx has).
func (t *tailer) fresh(ctx context.Context) {
	t.mu.Lock()
	ended := t.ended
	t.mu.Unlock()
	if ended {
		return
	}
	read := make(chan struct{})
	select {
	case t.poke <- read:
	case <-t.done:
		return
	case <-ctx.Done():
		return
	}
	select {
	case <-read:
	case <-t.done:
	case <-ctx.Done():
	}
}

// followed says whether anyone follows the output.
func (t *tailer) followed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs) > 0
}

// read feeds everything appended since the last read, following the output
// across rotations: once the log's path names another file, the shim writes
// no more to ours, so the rest of ours is read, then the file that came
// after it (several rotations may have happened since the last look). It
// returns how many bytes it read.
func (t *tailer) read() int {
	buf := make([]byte, 64<<10)
	total := 0
	drain := func() {
		for {
			n, err := t.f.Read(buf)
			t.feed(buf[:n])
			total += n
			if n == 0 || err != nil {
				return
			}
		}
	}
	next := t.path
	for {
		if t.f == nil {
			f, err := os.Open(next)
			if err != nil {
				return total
			}
			st, err := f.Stat()
			if err != nil {
				f.Close()
				return total
			}
			t.f, t.ino = f, inode(st)
		}
		drain()
		st, err := os.Stat(t.path)
		if err != nil || inode(st) == t.ino {
			return total
		}
		drain()
		next = t.successor()
		t.f.Close()
		t.f = nil
	}
}

// successor returns the file written after the one being read: the one
// rotated just after it, or, if it was rotated out altogether, the oldest
// one kept.
func (t *tailer) successor() string {
	name := func(n int) string {
		if n == 0 {
			return t.path
		}
		return fmt.Sprintf("%s.%d", t.path, n)
	}
	for n := 1; n <= t.keep; n++ {
		if st, err := os.Stat(name(n)); err == nil && inode(st) == t.ino {
			return name(n - 1)
		}
	}
	for n := t.keep; n >= 1; n-- {
		if _, err := os.Stat(name(n)); err == nil {
			return name(n)
		}
	}
	return t.path
}

func inode(st fs.FileInfo) uint64 {
	if s, ok := st.Sys().(*syscall.Stat_t); ok {
		return s.Ino
	}
	return 0
}

// feed adds the complete lines in b to the ring and hands them to followers.
// A follower that cannot keep up is dropped rather than slowing the others.
func (t *tailer) feed(b []byte) {
	if len(b) == 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.partial = append(t.partial, b...)
	i := bytes.LastIndexByte(t.partial, '\n')
	if i < 0 {
		return
	}
	var complete []byte
	for line := range bytes.Lines(t.partial[:i+1]) {
		l := t.redact(string(line))
		t.ring.add(l)
		complete = append(complete, l...)
	}
	t.partial = append(t.partial[:0], t.partial[i+1:]...)
	t.publish(complete)
}

func (t *tailer) publish(b []byte) {
	for f := range t.subs {
		select {
		case f.ch <- b:
		default:
			delete(t.subs, f)
			f.dropped = true // before the close, so a reader that sees it closed sees this
			close(f.ch)
		}
	}
}

// follower receives the output after a snapshot. ch is closed at the end
// of the output, or when the follower fell behind (dropped).
type follower struct {
	ch      chan []byte
	dropped bool
}

// end hands out a last unterminated line and closes every follower.
func (t *tailer) end() {
	if t.f != nil {
		t.f.Close()
		t.f = nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.partial) > 0 {
		line := t.redact(string(t.partial) + "\n")
		t.partial = nil
		t.ring.add(line)
		t.publish([]byte(line))
	}
	for f := range t.subs {
		close(f.ch)
	}
	t.subs = nil
	t.ended = true
}

// snapshot returns the last n lines (all kept when n <= 0) and, when follow
// is set, a follower for the output after them.
func (t *tailer) snapshot(n int, follow bool) ([]byte, *follower) {
	t.mu.Lock()
	defer t.mu.Unlock()
	var b bytes.Buffer
	for _, l := range t.ring.last(n) {
		b.WriteString(l)
	}
	if !follow {
		return b.Bytes(), nil
	}
	f := &follower{ch: make(chan []byte, 256)}
	if t.ended {
		close(f.ch)
	} else {
		t.subs[f] = true
	}
	return b.Bytes(), f
}

// unsubscribe stops handing output to f.
func (t *tailer) unsubscribe(f *follower) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs[f] {
		delete(t.subs, f)
		close(f.ch)
	}
}

// lastLines returns up to n complete lines that end the first size bytes of
// f, and what follows the last newline. It reads backwards in blocks, so a
// large file costs only its tail.
func lastLines(f *os.File, size int64, n int) ([]string, string) {
	const block = 64 << 10
	var buf []byte
	off := size
	for off > 0 && bytes.Count(buf, []byte{'\n'}) <= n {
		start := max(0, off-block)
		chunk := make([]byte, off-start)
		if _, err := f.ReadAt(chunk, start); err != nil && !errors.Is(err, io.EOF) {
			break
		}
		buf = append(chunk, buf...)
		off = start
	}
	i := bytes.LastIndexByte(buf, '\n')
	partial := string(buf[i+1:])
	var lines []string
	for l := range bytes.Lines(buf[:i+1]) {
		lines = append(lines, string(l))
	}
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // may be the end of a line that started before off
	}
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return lines, partial
}

// ring keeps the last lines added.
type ring struct {
	lines []string
	next  int
	full  bool
}

func newRing(n int) ring { return ring{lines: make([]string, n)} }

func (r *ring) cap() int { return len(r.lines) }

func (r *ring) add(l string) {
	r.lines[r.next] = l
	r.next = (r.next + 1) % len(r.lines)
	if r.next == 0 {
		r.full = true
	}
}

// last returns the last n lines in order (all when n <= 0).
func (r *ring) last(n int) []string {
	all := append([]string(nil), r.lines[:r.next]...)
	if r.full {
		all = append(append([]string(nil), r.lines[r.next:]...), all...)
	}
	if n > 0 && n < len(all) {
		all = all[len(all)-n:]
	}
	return all
}
