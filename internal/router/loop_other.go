//go:build !linux

package router

import (
	"context"
	"errors"
	"net"
)

// Elsewhere than Linux there is no event loop: the fasthttp server accepts on
// every listener.

type loopEngine struct{}

type loopListener struct{ handoff net.Listener }

func newLoopEngine(*Router) (*loopEngine, error) {
	return nil, errors.New("the event loop needs Linux")
}

func (*loopEngine) attach(string, net.Listener, net.Listener) (*loopListener, error) {
	return nil, errors.New("the event loop needs Linux")
}

func (*loopEngine) stop() {}

func (*loopListener) detach() {}

func (*loopListener) drain(context.Context) {}

func newHandoffListener(net.Addr) net.Listener { return nil }
