package rundir

import (
	"errors"
	"os"

	"golang.org/x/sys/windows"
)

// lockAt is where the run's lock sits in the lock file, 1<<62: far
// beyond the holder's line. Windows byte-range locks are mandatory: a
// lock on the line itself (byte 0, where gofrs/flock locks) would keep
// every other handle, this process's own included, from writing or
// reading it, and Open could not write the holder.
var lockAt = windows.Overlapped{OffsetHigh: 1 << 30}

// fileLock is an exclusive lock on one byte of a file, held while the
// handle stays open.
type fileLock struct {
	path string
	f    *os.File
}

func newLock(path string) *fileLock { return &fileLock{path: path} }

// Path is the lock file's path.
func (l *fileLock) Path() string { return l.path }

// TryLock takes the lock, reporting false if another handle holds it.
func (l *fileLock) TryLock() (bool, error) {
	if l.f != nil {
		return true, nil
	}
	f, err := os.OpenFile(l.path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return false, err
	}
	ol := lockAt
	if err := windows.LockFileEx(windows.Handle(f.Fd()), windows.LOCKFILE_EXCLUSIVE_LOCK|windows.LOCKFILE_FAIL_IMMEDIATELY, 0, 1, 0, &ol); err != nil {
		f.Close()
		if errors.Is(err, windows.ERROR_LOCK_VIOLATION) {
			return false, nil
		}
		return false, err
	}
	l.f = f
	return true, nil
}

// Unlock releases the lock and closes its handle.
func (l *fileLock) Unlock() error {
	if l.f == nil {
		return nil
	}
	ol := lockAt
	err := windows.UnlockFileEx(windows.Handle(l.f.Fd()), 0, 1, 0, &ol)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	return err
}
