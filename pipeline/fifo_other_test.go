//go:build !unix

package pipeline

import "testing"

// mkfifo skips the test: Windows keeps named pipes in their own
// namespace (\\.\pipe\), so no folder can hold one.
func mkfifo(t *testing.T, _ string) {
	t.Skip("no named pipe can be made in a folder on this system (Windows keeps them under \\\\.\\pipe\\)")
}
