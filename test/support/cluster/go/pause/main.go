// pause: the pod sandbox's process. It holds the pod's namespaces open, reaps zombies (it is
// PID 1 when the pod shares its PID namespace) and exits 0 on SIGTERM or SIGINT, like
// registry.k8s.io/pause. Built with CGO_ENABLED=0: a static binary, the whole image.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "-v" {
		os.Stdout.WriteString("keypool pause\n")
		return
	}
	signals := make(chan os.Signal, 16)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range signals {
		if s != syscall.SIGCHLD {
			os.Stderr.WriteString("pause: shutting down, got " + s.String() + "\n")
			os.Exit(0)
		}
		reap()
	}
}

// reap collects every exited child without blocking.
func reap() {
	for {
		var status syscall.WaitStatus
		pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
		if pid <= 0 || err != nil {
			return
		}
	}
}
