// Package robustio renames and removes files that another process may
// have open for a moment. On Windows an open file can be neither replaced
// nor removed unless its opener allowed it (Go's os.Open does not), so a
// reader of the file (bt eval reading the newest checkpoint, a copy, a
// virus scanner looking at a file just written) makes the rename or
// removal fail with "Access is denied" or a sharing violation until it
// closes the file. There these functions try again, for up to Wait;
// elsewhere they are os.Rename and os.Remove.
package robustio

import (
	"os"
	"time"
)

// Wait is how long Rename and Remove keep trying on Windows: longer than
// a reader takes to read a checkpoint of some hundred megabytes.
const Wait = 10 * time.Second

// Rename renames oldpath to newpath, replacing newpath.
func Rename(oldpath, newpath string) error {
	return retry(func() error { return os.Rename(oldpath, newpath) })
}

// Remove removes the file at path.
func Remove(path string) error {
	return retry(func() error { return os.Remove(path) })
}
