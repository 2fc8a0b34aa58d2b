package process

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// A fleet's shim (Options.ShimPerFleet) watches every instance of one fleet
// of one revision: the server starts it with the fleet's first instance, as
// it starts the shim of one instance, and gives it the others on its
// socket. It ends when the last of them has ended. Its socket is an
// abstract Unix socket named after its PID and start time (so a reused PID
// never finds an old one), and it answers only processes of its own user:
// the server, not the apps, which run as other users when the server is
// root.
//
// Requests are one JSON line per connection, answered by one line:
//
//	{"launch": CONFIG}      -> readyMsg
//	{"stop": "ID"}          -> shimAnswer: the instance's stop signal sent
//	{"kill": "ID"}          -> shimAnswer: SIGKILL sent to its group
//
// An app's leftovers, its descendants that outlive it, are still killed
// when it ends: those in its process group, and those whose environment
// holds its BG_INSTANCE. A daemon that left both behind can no longer be
// told from another instance's, and is killed when the fleet's shim ends.
type shimRequest struct {
	Launch *shimConfig `json:"launch,omitempty"`
	Stop   string      `json:"stop,omitempty"`
	Kill   string      `json:"kill,omitempty"`
}

// shimAnswer is the answer to a stop or a kill.
type shimAnswer struct {
	Error string `json:"error,omitempty"`
}

// shimOp is a request on its way to the shim's run loop.
type shimOp struct {
	req   shimRequest
	reply chan any
}

// shimSocketName is the abstract socket of the fleet's shim pid that
// started at ticks.
func shimSocketName(pid int, ticks uint64) string {
	return "@bluegreen-instance-shim-" + strconv.Itoa(pid) + "-" + strconv.FormatUint(ticks, 10)
}

// listen opens the shim's socket and serves it until closeListener.
func (s *shim) listen() error {
	self, err := readStat(os.Getpid())
	if err != nil {
		return fmt.Errorf("reading the shim's start time: %w", err)
	}
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: shimSocketName(os.Getpid(), self.StartTicks), Net: "unix"})
	if err != nil {
		return fmt.Errorf("opening the fleet shim's socket: %w", err)
	}
	s.ln, s.ops, s.closing = ln, make(chan shimOp), make(chan struct{})
	go func() {
		for {
			c, err := ln.AcceptUnix()
			if err != nil {
				return
			}
			go s.serveConn(c)
		}
	}()
	return nil
}

// closeListener stops taking requests: those on their way are told the
// shim is closing.
func (s *shim) closeListener() {
	if s.ln == nil {
		return
	}
	select {
	case <-s.closing:
	default:
		close(s.closing)
		s.ln.Close()
	}
}

func (s *shim) serveConn(c *net.UnixConn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(time.Minute))
	if !sameUser(c) {
		return
	}
	var req shimRequest
	if err := json.NewDecoder(bufio.NewReader(c)).Decode(&req); err != nil {
		return
	}
	op := shimOp{req: req, reply: make(chan any, 1)}
	var answer any
	select {
	case s.ops <- op:
		answer = <-op.reply
	case <-s.closing:
		answer = readyMsg{Closing: true}
	}
	b, _ := json.Marshal(answer)
	c.Write(append(b, '\n'))
}

// sameUser reports whether the peer runs as the shim's own user.
func sameUser(c *net.UnixConn) bool {
	raw, err := c.SyscallConn()
	if err != nil {
		return false
	}
	var cred *syscall.Ucred
	var cerr error
	if err := raw.Control(func(fd uintptr) {
		cred, cerr = syscall.GetsockoptUcred(int(fd), syscall.SOL_SOCKET, syscall.SO_PEERCRED)
	}); err != nil || cerr != nil {
		return false
	}
	return int(cred.Uid) == os.Geteuid()
}

// serve runs a request on the run loop.
func (s *shim) serve(req shimRequest) any {
	switch {
	case req.Launch != nil:
		c := *req.Launch
		c.Shared = true
		in, err := s.start(c)
		if err != nil {
			return readyMsg{Error: err.Error()}
		}
		return readyMsg{Record: &in.rec}
	case req.Stop != "" || req.Kill != "":
		id, sig := req.Stop, shimStop
		if req.Kill != "" {
			id, sig = req.Kill, shimKill
		}
		// An instance whose app has exited already has nothing to signal.
		if in, ok := s.byID[id]; ok {
			s.signal(in, sig)
		}
		return shimAnswer{}
	}
	return shimAnswer{Error: "empty request"}
}

// instanceMarker is the BG_INSTANCE entry of an app's environment.
func instanceMarker(env []string) string {
	for _, e := range env {
		if strings.HasPrefix(e, "BG_INSTANCE=") {
			return e
		}
	}
	return ""
}

// errShimClosing says a fleet's shim is ending and took no instance.
var errShimClosing = errors.New("the fleet's shim is ending")

// askShim sends one request to the fleet shim of rec (or of pid and
// ticks) and decodes its answer into answer.
func askShim(ctx context.Context, pid int, ticks uint64, req shimRequest, answer any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", shimSocketName(pid, ticks))
	if err != nil {
		return err
	}
	defer c.Close()
	deadline := time.Now().Add(time.Minute)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetDeadline(deadline)
	b, err := json.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := c.Write(append(b, '\n')); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadBytes('\n')
	if err != nil {
		return &shimUnanswered{err: err}
	}
	return json.Unmarshal(line, answer)
}

// shimUnanswered is a request a fleet's shim got but did not answer (in
// time): it may still carry it out.
type shimUnanswered struct {
	err   error
	pid   int
	ticks uint64
}

func (e *shimUnanswered) Error() string {
	return "no answer: " + e.err.Error()
}

func (e *shimUnanswered) Unwrap() error { return e.err }
