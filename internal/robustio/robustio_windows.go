package robustio

import (
	"errors"
	"time"

	"golang.org/x/sys/windows"
)

// retry calls f until it succeeds, fails for a reason other than the
// file being open elsewhere, or Wait has passed.
func retry(f func() error) error {
	deadline := time.Now().Add(Wait)
	pause := time.Millisecond
	for {
		err := f()
		if !busy(err) || time.Now().After(deadline) {
			return err
		}
		time.Sleep(pause)
		pause = min(2*pause, 100*time.Millisecond)
	}
}

// busy reports whether err is one Windows gives for a file that another
// handle holds open without sharing its deletion.
func busy(err error) bool {
	return errors.Is(err, windows.ERROR_ACCESS_DENIED) || errors.Is(err, windows.ERROR_SHARING_VIOLATION)
}
