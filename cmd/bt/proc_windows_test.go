package main

import (
	"errors"
	"os"
	"os/exec"
	"syscall"
	"testing"

	"golang.org/x/sys/windows"
)

// ctrlCGroup starts cmd in a process group of its own, so that a console
// control event can be sent to it alone. Control events travel only
// within a console, so this process makes one if it has none (as when
// its output goes to a file, or under Wine started from a script); Go's
// os.Stdout and os.Stderr keep the handles they had.
func ctrlCGroup(cmd *exec.Cmd) {
	allocConsole.Call() // fails, harmlessly, where there is one
	cmd.SysProcAttr = &syscall.SysProcAttr{CreationFlags: windows.CREATE_NEW_PROCESS_GROUP}
}

var allocConsole = windows.NewLazySystemDLL("kernel32.dll").NewProc("AllocConsole")

// sendCtrlC sends p's process group Ctrl-Break, a console control event
// as Ctrl-C is: Windows delivers Ctrl-C itself to every process on the
// console (the test's too) and never to one group alone, and Go gives a
// program both as os.Interrupt. p must have been started by ctrlCGroup.
func sendCtrlC(p *os.Process) error {
	return windows.GenerateConsoleCtrlEvent(windows.CTRL_BREAK_EVENT, uint32(p.Pid))
}

// endedByCtrlC reports whether Wait's err says the process was ended by
// the console control event's default handling, which exits with
// STATUS_CONTROL_C_EXIT.
func endedByCtrlC(err error) bool {
	const statusControlCExit = 0xC000013A
	var exit *exec.ExitError
	return errors.As(err, &exit) && uint32(exit.ExitCode()) == statusControlCExit
}

var (
	ntdll     = windows.NewLazySystemDLL("ntdll.dll")
	ntSuspend = ntdll.NewProc("NtSuspendProcess")
	ntResume  = ntdll.NewProc("NtResumeProcess")
)

// pause suspends every thread of p until resume (Windows has no SIGSTOP).
func pause(p *os.Process) error { return callOnProcess(ntSuspend, p) }

// resume continues p after pause.
func resume(p *os.Process) error { return callOnProcess(ntResume, p) }

func callOnProcess(f *windows.LazyProc, p *os.Process) error {
	h, err := windows.OpenProcess(windows.PROCESS_SUSPEND_RESUME, false, uint32(p.Pid))
	if err != nil {
		return err
	}
	defer windows.CloseHandle(h)
	if st, _, _ := f.Call(uintptr(h)); st != 0 {
		return windows.NTStatus(st)
	}
	return nil
}

// mkfifo skips the test: Windows keeps named pipes in their own
// namespace (\\.\pipe\), so no folder can hold one.
func mkfifo(t *testing.T, _ string) {
	t.Skip("no named pipe can be made in a folder on this system (Windows keeps them under \\\\.\\pipe\\)")
}
