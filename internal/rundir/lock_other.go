//go:build !windows

package rundir

import "github.com/gofrs/flock"

// fileLock is an exclusive flock(2) (fcntl where there is none) on the
// lock file, which leaves its contents readable and writable.
type fileLock = flock.Flock

func newLock(path string) *fileLock { return flock.New(path) }
