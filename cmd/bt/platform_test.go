package main

import (
	"bytes"
	"runtime"
	"strings"
	"testing"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/disttest"
)

// TestBackendFlag: -backend is in every command's help, refuses a name it
// does not know as it is parsed, and limits bt devices, and the adapters
// the ranks of a run spread over, to one backend.
func TestBackendFlag(t *testing.T) {
	defer func() { backend = gpu.BackendAuto }()
	if err := runDevices([]string{"-backend", "directx"}); err == nil || !strings.Contains(err.Error(), "auto, vulkan, metal, dx12, gl") {
		t.Errorf("-backend directx: %v, want an error listing the backends", err)
	}
	var b bytes.Buffer
	printHelp(&b, lastFlags)
	if !strings.Contains(b.String(), "-backend api") {
		t.Errorf("help lacks -backend:\n%s", b.String())
	}
	if runtime.GOOS == "darwin" {
		return
	}
	err := runDevices([]string{"-backend", "metal", "-check=false"})
	if err == nil || !strings.Contains(err.Error(), "backend metal") {
		t.Errorf("bt devices -backend metal on %s: %v, want an error naming the backend", runtime.GOOS, err)
	}
	if backend != gpu.BackendMetal {
		t.Errorf("-backend metal set %v", backend)
	}
	// A rank of several takes its adapter among -backend's.
	disttest.Run(2, func(comm dist.Comm) error {
		if _, err := rankAdapter("", comm); err == nil || !strings.Contains(err.Error(), "backend metal") {
			t.Errorf("rank %d of 2, -backend metal: %v, want an error naming the backend", comm.Rank(), err)
		}
		return nil
	})
}
