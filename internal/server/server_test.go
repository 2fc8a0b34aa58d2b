package server

import (
	"strings"
	"testing"
)

func TestAPIListensOnLoopbackOnly(t *testing.T) {
	for _, ok := range []string{"127.0.0.1:7070", "127.0.0.2:0", "[::1]:7070", "localhost:7070"} {
		if err := checkLoopback(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"0.0.0.0:7070", ":7070", "192.168.1.5:7070", "example.com:7070", "7070"} {
		if err := checkLoopback(bad); err == nil || !strings.Contains(err.Error(), "--api") {
			t.Errorf("%s: %v; want a refusal naming --api", bad, err)
		}
	}
}
