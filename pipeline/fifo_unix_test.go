//go:build unix

package pipeline

import (
	"syscall"
	"testing"
)

// mkfifo makes a named pipe at path.
func mkfifo(t *testing.T, path string) { must(t, syscall.Mkfifo(path, 0o644)) }
