//go:build !linux

package routerproc

import "errors"

func isZombie(int) bool { return false }

// runsRouteFile cannot look at another process's arguments portably; the pid
// file is trusted.
func runsRouteFile(int, string) bool { return true }

func socketPeerPID(string) (int, error) {
	return 0, errors.New("the peer of a unix socket is only known on Linux")
}
