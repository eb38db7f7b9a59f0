//go:build unix

package serve

import (
	"os"
	"syscall"
)

// pidAlive reports whether the lock holder's process is alive on this
// host: the fallback where the lock table cannot be read.
func pidAlive(holder string) (bool, string) {
	pid, host := holderPID(holder)
	me, _ := os.Hostname()
	if pid <= 0 || host != me {
		return false, ""
	}
	if syscall.Kill(pid, 0) == nil {
		return true, "the process that holds its lock is alive (" + holder + ")"
	}
	return false, ""
}
