// Command pause is the pod sandbox of the test cluster (internal/testk8s):
// the process that holds a pod's namespaces while its containers come and
// go. It is PID 1 of the pod, so it reaps the orphans it inherits and exits
// on SIGTERM or SIGINT (PID 1 ignores the signals it does not handle).
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sig := make(chan os.Signal, 8)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sig {
		if s != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var ws syscall.WaitStatus
			if pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil); pid <= 0 || err != nil {
				break
			}
		}
	}
}
