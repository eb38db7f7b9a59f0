package main

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/bt-org/bt/gpu"
)

// backend is the -backend every subcommand shares (newFlags).
var backend gpu.Backend

// backendFlag is -backend: a gpu.Backend, refused as it is parsed when it
// names none.
type backendFlag struct{ p *gpu.Backend }

func (f backendFlag) String() string {
	if f.p == nil {
		return gpu.BackendAuto.String()
	}
	return f.p.String()
}

func (backendFlag) placeholder() string { return "api" }

func (f backendFlag) Set(s string) error { return f.p.UnmarshalText([]byte(s)) }

func backendNames() string {
	var names []string
	for _, b := range gpu.Backends() {
		names = append(names, b.String())
	}
	return strings.Join(names, ", ")
}

// openDevice opens the adapter that -adapter and -backend choose, and says
// on stderr which adapters the quick check passed over, and why.
func openDevice(adapter string) (*gpu.Device, error) {
	d, err := gpu.Open(gpu.Options{Adapter: adapter, Backend: backend})
	if err != nil {
		return nil, err
	}
	for _, s := range d.Skipped {
		fmt.Fprintf(os.Stderr, "bt: skipped adapter %s\n", s)
	}
	return d, nil
}

// adapters lists the adapters of -backend ($BT_BACKEND where it is auto).
func adapters() ([]gpu.AdapterInfo, error) {
	if backend == gpu.BackendAuto {
		return gpu.Adapters()
	}
	return gpu.AdaptersOf(backend)
}

// quietDrivers gives the Vulkan loader's Wayland probe a private, empty
// runtime directory where XDG_RUNTIME_DIR is unset, as it is in containers
// and under sudo: the probe prints "XDG_RUNTIME_DIR is invalid" on every
// start otherwise. The binary sets it for itself; the gpu package leaves
// the environment of the programs that embed it alone.
func quietDrivers() {
	if runtime.GOOS == "windows" || runtime.GOOS == "darwin" || os.Getenv("XDG_RUNTIME_DIR") != "" || os.Getenv("BT_VERBOSE") != "" {
		return
	}
	dir := filepath.Join(os.TempDir(), fmt.Sprintf("bt-runtime-%d", os.Getuid()))
	if err := os.MkdirAll(dir, 0o700); err == nil {
		os.Setenv("XDG_RUNTIME_DIR", dir)
	}
}
