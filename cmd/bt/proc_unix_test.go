//go:build unix

package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"
)

// ctrlCGroup readies cmd to be sent Ctrl-C alone: nothing to do here.
func ctrlCGroup(*exec.Cmd) {}

// sendCtrlC interrupts p as Ctrl-C in its terminal does: SIGINT.
func sendCtrlC(p *os.Process) error { return p.Signal(syscall.SIGINT) }

// endedByCtrlC reports whether Wait's err says the process was ended by
// Ctrl-C's default handling: killed by SIGINT.
func endedByCtrlC(err error) bool {
	var exit *exec.ExitError
	return errors.As(err, &exit) && exit.Sys().(syscall.WaitStatus).Signal() == syscall.SIGINT
}

// pause stops p until resume.
func pause(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

// resume continues p after pause.
func resume(p *os.Process) error { return p.Signal(syscall.SIGCONT) }

// mkfifo makes a named pipe at path.
func mkfifo(t *testing.T, path string) {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o644); err != nil {
		t.Fatal(err)
	}
}
