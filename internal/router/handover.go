package router

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// A new router process takes the listening sockets over from the running one
// (decision 0005). The successor asks on the admin unix socket
// (POST /handover); the running router answers 101 and sends its table and
// its listening sockets (SCM_RIGHTS), then waits. The successor serves on
// them and moves the admin socket's path to itself, then says "ready"; the
// running router stops accepting, answers "stopped", drains what it was
// serving and exits. A socket is never closed while a client might connect
// to it: both processes hold it during the swap, and the kernel's accept
// queue is one for both.

// HandoverPath is the admin route a successor asks for the listeners on.
const HandoverPath = "/handover"

// handoverWait bounds how long the running router waits for its successor
// to say it serves, and the successor for each answer.
var handoverWait = 30 * time.Second

const handoverUpgrade = "bluegreen-handover"

// handoverMsg is what the running router sends its successor; the listening
// sockets ride with it, in the order of Listeners.
type handoverMsg struct {
	Pid       int               `json:"pid"`
	Table     json.RawMessage   `json:"table"` // the running table, admin_token included
	Listeners []handoverSockets `json:"listeners"`
	// Challenges are the ACME HTTP-01 answers set, so that an order in
	// progress is answered by the successor too.
	Challenges map[string]string `json:"challenges,omitempty"`
}

type handoverSockets struct {
	Addr string `json:"addr"`
	TLS  bool   `json:"tls"`
}

// handoverState is the router's side of hand-overs, in either direction.
type handoverState struct {
	busy      bool                    // a successor is being handed the listeners (under Router.mu)
	inherited map[string]net.Listener // sockets received from a predecessor, by address (under Router.mu)
	adminLn   net.Listener
	done      chan struct{} // closed once a successor serves the listeners
	doneOnce  sync.Once
	successor int
}

// HandedOver is closed once a successor router serves this router's
// listeners; this router has then stopped accepting and should drain and exit.
func (r *Router) HandedOver() <-chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ho.done == nil {
		r.ho.done = make(chan struct{})
	}
	return r.ho.done
}

// Successor returns the pid of the router that took the listeners over, or 0.
func (r *Router) Successor() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ho.successor
}

// listen opens a listener for addr, or takes the one a predecessor handed over.
func (r *Router) listen(addr string) (net.Listener, error) {
	if ln, ok := r.ho.inherited[addr]; ok {
		delete(r.ho.inherited, addr)
		return ln, nil
	}
	return net.Listen("tcp", addr)
}

// refuseApply stops table changes while the listeners are being handed
// over: the successor already has the table, and would not see a change.
func (r *Router) refuseApply() error {
	if r.ho.busy {
		return errors.New("the router is handing its listeners over to a new router process; send the table to the new one")
	}
	return nil
}

// rawListener is the listening socket under whatever wraps it.
func (l *listener) rawListener() net.Listener {
	switch {
	case l.loop != nil && l.loop.socket() != nil:
		return l.loop.socket()
	case l.front != nil:
		return l.front.raw
	}
	if g, ok := l.ln.(guardListener); ok {
		return g.Listener
	}
	return l.ln
}

// stopAccepting closes this process's copy of every listening socket, which
// the successor keeps open: connections queued in the kernel stay for it.
func (r *Router) stopAccepting() {
	r.mu.Lock()
	ls := make([]*listener, 0, len(r.listeners))
	for _, l := range r.listeners {
		ls = append(ls, l)
	}
	r.mu.Unlock()
	for _, l := range ls {
		switch {
		case l.loop != nil:
			l.loop.detach()
		case l.front != nil:
			l.front.raw.Close()
		default:
			l.ln.Close()
		}
	}
}

// postHandover serves POST /handover: it hands the listeners to the
// successor that asks, and waits for it to serve them.
func (r *Router) postHandover(w http.ResponseWriter, req *http.Request) {
	if la, _ := req.Context().Value(http.LocalAddrContextKey).(net.Addr); la == nil || la.Network() != "unix" {
		writeJSON(w, http.StatusBadRequest, apiError{"invalid_request", "a hand-over passes sockets, which only a unix: admin socket can carry"})
		return
	}
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, apiError{"internal", "hand-over: " + err.Error()})
		return
	}
	defer conn.Close()
	uc, ok := conn.(*net.UnixConn)
	if !ok {
		io.WriteString(conn, "HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
		return
	}
	if err := r.handOver(uc, brw.Reader); err != nil {
		r.log.Warn("hand-over abandoned; this router keeps serving", "err", err)
	}
}

func (r *Router) handOver(uc *net.UnixConn, rd *bufio.Reader) error {
	uc.SetWriteDeadline(time.Now().Add(handoverWait))
	r.mu.Lock()
	conflict := func(msg string) error {
		r.mu.Unlock()
		body, _ := json.Marshal(apiError{"conflict", msg})
		fmt.Fprintf(uc, "HTTP/1.1 409 Conflict\r\nContent-Type: application/json\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", len(body), body)
		return errors.New("a successor was refused: " + msg)
	}
	if r.closed || r.ho.busy || r.ho.successor != 0 {
		return conflict("the router is shutting down or handing over already")
	}
	// Requests a pause holds here would be answered 503 when this router
	// drains: the resume goes to the successor, which does not hold them.
	for _, name := range sortedKeys(r.table.Load().apps) {
		if r.table.Load().apps[name].pause != nil {
			return conflict(fmt.Sprintf("app %s is paused, and the requests held for it would be answered 503; resume it, then upgrade", name))
		}
	}
	msg := handoverMsg{Pid: os.Getpid()}
	var fds []int
	addrs := sortedKeys(r.listeners)
	for _, addr := range addrs {
		l := r.listeners[addr]
		sc, ok := l.rawListener().(syscall.Conn)
		if !ok {
			continue
		}
		rc, err := sc.SyscallConn()
		if err != nil {
			continue
		}
		// The descriptor stays valid after Control returns: listeners in
		// r.listeners close only under r.mu, which is held.
		rc.Control(func(fd uintptr) { fds = append(fds, int(fd)) })
		msg.Listeners = append(msg.Listeners, handoverSockets{Addr: addr, TLS: l.tls})
	}
	table, err := json.Marshal(r.table.Load().cfg)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	msg.Table = table
	r.edge.mu.Lock()
	msg.Challenges = maps.Clone(r.edge.challenges)
	r.edge.mu.Unlock()
	js, _ := json.Marshal(msg)
	head := "HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: " + handoverUpgrade + "\r\n\r\n"
	if _, err := io.WriteString(uc, head); err != nil {
		r.mu.Unlock()
		return err
	}
	var oob []byte
	if len(fds) > 0 {
		oob = syscall.UnixRights(fds...)
	}
	_, _, err = uc.WriteMsgUnix(append(js, '\n'), oob, nil)
	if err != nil {
		r.mu.Unlock()
		return err
	}
	r.ho.busy = true
	r.mu.Unlock()
	r.log.Info("handing the listeners over to a new router process", "listeners", addrs)

	uc.SetReadDeadline(time.Now().Add(handoverWait))
	line, err := rd.ReadString('\n')
	if err != nil || line != "ready\n" {
		r.mu.Lock()
		r.ho.busy = false
		r.mu.Unlock()
		if err == nil {
			err = fmt.Errorf("the new router said %q", strings.TrimSpace(line))
		}
		return fmt.Errorf("the new router did not take over: %w", err)
	}
	// The admin socket's path is the successor's now: closing this one must
	// not remove it.
	if ul, ok := r.ho.adminLn.(*net.UnixListener); ok {
		ul.SetUnlinkOnClose(false)
	}
	r.stopAccepting()
	io.WriteString(uc, "stopped\n")
	r.mu.Lock()
	r.ho.successor = -1
	if cred, err := peerPid(uc); err == nil {
		r.ho.successor = cred
	}
	if r.ho.done == nil {
		r.ho.done = make(chan struct{})
	}
	done := r.ho.done
	r.mu.Unlock()
	r.ho.doneOnce.Do(func() { close(done) })
	r.log.Info("the new router serves the listeners; this one stopped accepting", "successor", r.Successor())
	return nil
}

// Predecessor is a hand-over in progress, seen from the new router: the
// running router's table and listening sockets, and the connection on which
// the new router says it serves them.
type Predecessor struct {
	// Pid is the running router's process.
	Pid int
	// Table is the table the running router serves.
	Table *Config
	// Challenges are the ACME HTTP-01 answers it gives (token → key
	// authorization).
	Challenges map[string]string

	conn      *net.UnixConn
	rd        *bufio.Reader
	listeners map[string]net.Listener
}

// TakeOver asks the router serving the admin socket at path for its
// listening sockets. Until Finish, nothing changes for that router: it keeps
// serving, and an error or Abandon leaves it so.
func TakeOver(ctx context.Context, path, token string) (*Predecessor, error) {
	d := net.Dialer{Timeout: 5 * time.Second}
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("taking over: no router answers on %s: %w", path, err)
	}
	uc := c.(*net.UnixConn)
	p, err := takeOver(uc, token)
	if err != nil {
		uc.Close()
		return nil, fmt.Errorf("taking over from the router on %s: %w", path, err)
	}
	return p, nil
}

func takeOver(uc *net.UnixConn, token string) (*Predecessor, error) {
	uc.SetDeadline(time.Now().Add(handoverWait))
	req := "POST " + HandoverPath + " HTTP/1.1\r\nHost: router\r\nContent-Length: 0\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(uc, req+"\r\n"); err != nil {
		return nil, err
	}
	var data []byte
	var fds []int
	buf, oob := make([]byte, 64<<10), make([]byte, syscall.CmsgSpace(4*1024))
	closeFds := func() {
		for _, fd := range fds {
			if fd >= 0 {
				syscall.Close(fd)
			}
		}
	}
	for {
		head := bytes.Index(data, []byte("\r\n\r\n"))
		if head >= 0 && !bytes.HasPrefix(data, []byte("HTTP/1.1 101 ")) {
			closeFds()
			return nil, refusal(io.MultiReader(bytes.NewReader(data), uc))
		}
		if head >= 0 && bytes.IndexByte(data[head+4:], '\n') >= 0 {
			rest := data[head+4:]
			line := rest[:bytes.IndexByte(rest, '\n')]
			p, err := predecessor(line, fds)
			if err != nil {
				closeFds()
				return nil, err
			}
			p.conn = uc
			p.rd = bufio.NewReader(io.MultiReader(bytes.NewReader(rest[len(line)+1:]), uc))
			uc.SetDeadline(time.Time{})
			return p, nil
		}
		n, oobn, _, _, err := uc.ReadMsgUnix(buf, oob)
		data = append(data, buf[:n]...)
		if oobn > 0 {
			msgs, perr := syscall.ParseSocketControlMessage(oob[:oobn])
			for _, m := range msgs {
				if got, err := syscall.ParseUnixRights(&m); err == nil {
					fds = append(fds, got...)
				}
			}
			if perr != nil {
				closeFds()
				return nil, perr
			}
		}
		if err != nil {
			closeFds()
			if errors.Is(err, io.EOF) {
				return nil, errors.New("the router closed the connection before handing anything over")
			}
			return nil, err
		}
	}
}

// refusal reads an answer other than 101 as the router's error.
func refusal(rd io.Reader) error {
	resp, err := http.ReadResponse(bufio.NewReader(rd), nil)
	if err != nil {
		return fmt.Errorf("reading the router's answer: %w", err)
	}
	defer resp.Body.Close()
	var e apiError
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	json.Unmarshal(b, &e)
	if resp.StatusCode == http.StatusNotFound {
		return fmt.Errorf("the router answered %s: it is older than hand-overs; stop it and start the new one instead", resp.Status)
	}
	if e.Message != "" {
		return fmt.Errorf("the router answered %s: %s", resp.Status, e.Message)
	}
	return fmt.Errorf("the router answered %s", resp.Status)
}

func predecessor(line []byte, fds []int) (*Predecessor, error) {
	var msg handoverMsg
	if err := json.Unmarshal(line, &msg); err != nil {
		return nil, fmt.Errorf("reading the hand-over: %w", err)
	}
	if len(msg.Listeners) != len(fds) {
		return nil, fmt.Errorf("the hand-over names %d listeners but carries %d sockets", len(msg.Listeners), len(fds))
	}
	cfg, err := ParseJSON(msg.Table)
	if err != nil {
		return nil, fmt.Errorf("the running router's table: %w", err)
	}
	p := &Predecessor{Pid: msg.Pid, Table: cfg, Challenges: msg.Challenges, listeners: map[string]net.Listener{}}
	for i, l := range msg.Listeners {
		f := os.NewFile(uintptr(fds[i]), "listener "+l.Addr)
		ln, err := net.FileListener(f) // a copy of its own; f is closed just below
		f.Close()
		fds[i] = -1 // closed with f; the caller closes those still >= 0
		if err != nil {
			p.closeListeners()
			return nil, fmt.Errorf("listener %s from the running router: %w", l.Addr, err)
		}
		p.listeners[l.Addr] = ln
	}
	return p, nil
}

// Listeners are the addresses handed over, sorted.
func (p *Predecessor) Listeners() []string {
	out := make([]string, 0, len(p.listeners))
	for a := range p.listeners {
		out = append(out, a)
	}
	sort.Strings(out)
	return out
}

func (p *Predecessor) closeListeners() {
	for _, ln := range p.listeners {
		ln.Close()
	}
	p.listeners = nil
}

// Abandon gives up the hand-over: the running router keeps serving, and
// this process's copies of its sockets are closed.
func (p *Predecessor) Abandon() {
	p.closeListeners()
	p.conn.Close()
}

// Finish tells the running router that r serves the listeners and the admin
// socket now. It stops accepting, drains and exits; once it has confirmed,
// r's event loops look again at the sockets, so that a connection the old
// router was woken for but did not take is accepted here.
func (p *Predecessor) Finish(r *Router) error {
	defer p.conn.Close()
	p.conn.SetDeadline(time.Now().Add(handoverWait))
	if _, err := io.WriteString(p.conn, "ready\n"); err != nil {
		return fmt.Errorf("telling the old router (pid %d) to stop: %w", p.Pid, err)
	}
	line, err := p.rd.ReadString('\n')
	r.rearmAccept()
	if err != nil || line != "stopped\n" {
		return fmt.Errorf("the old router (pid %d) did not confirm that it stopped accepting: %q %v", p.Pid, line, err)
	}
	return nil
}

// Inherit gives r the listening sockets p carries, for the next Apply to
// serve on in place of opening its own, and the ACME challenges p answers.
func (r *Router) Inherit(p *Predecessor) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ho.inherited = p.listeners
	p.listeners = nil
	for token, keyAuth := range p.Challenges {
		r.SetChallenge(token, keyAuth)
	}
}

// CloseUnused closes inherited sockets that the applied table does not name.
func (r *Router) CloseUnused() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, ln := range r.ho.inherited {
		ln.Close()
	}
	r.ho.inherited = nil
}

// rearmAccept registers the event loops' listening sockets again, so that
// a connection already waiting is reported to them.
func (r *Router) rearmAccept() {
	r.mu.Lock()
	ls := make([]*loopListener, 0, len(r.listeners))
	for _, l := range r.listeners {
		if l.loop != nil {
			ls = append(ls, l.loop)
		}
	}
	r.mu.Unlock()
	for _, ll := range ls {
		ll.rearm()
	}
}

// ListenAdminReplacing serves the admin API on the unix socket at addr
// ("unix:/path") where another router serves it now: the socket is made
// beside it and renamed over it, so that the path answers at every moment.
func (r *Router) ListenAdminReplacing(addr string) (net.Addr, error) {
	path, ok := strings.CutPrefix(addr, "unix:")
	if !ok {
		return nil, fmt.Errorf("admin listener %s: a hand-over needs a unix: admin socket", addr)
	}
	tmp := path + ".new"
	os.Remove(tmp)
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("admin listener %s: %w", tmp, err)
	}
	// Later closes must not remove the path, which may be a successor's by then.
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	if err := os.Chmod(tmp, 0o600); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("admin listener %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("admin listener %s: %w", path, err)
	}
	return r.serveAdmin(ln, addr), nil
}

// Build identifies the executable a process runs: the start of the SHA-256
// of its file. Two routers with the same Build run the same program.
func Build(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)[:12]), nil
}

// selfBuild is this process's Build: of the file it was started from,
// even if that file has been replaced since (/proc/self/exe on Linux).
var selfBuild = sync.OnceValue(func() string {
	for _, p := range []string{"/proc/self/exe", ""} {
		if p == "" {
			exe, err := os.Executable()
			if err != nil {
				return ""
			}
			p = exe
		}
		if b, err := Build(p); err == nil {
			return b
		}
	}
	return ""
})

// getVersion serves GET /version: who serves this admin API.
func (r *Router) getVersion(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"pid": os.Getpid(), "build": selfBuild(), "generation": r.Generation()})
}

// stopAccepting closes the listening socket and waits, until ctx ends, for
// the handshakes in progress to reach their server: a connection accepted
// is served, not closed, however late in a drain it came.
func (f *tlsFront) stopAccepting(ctx context.Context) {
	f.raw.Close()
	tick := time.NewTicker(drainPoll)
	defer tick.Stop()
	for {
		select {
		case <-f.runDone:
			if f.handshaking.Load() == 0 {
				return
			}
		default:
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
