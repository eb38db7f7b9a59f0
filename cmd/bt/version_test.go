package main

import (
	"bytes"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/pipeline"
)

// TestVersion: bt version reads the commit and the binding's version from
// the build information, prefers the version release.sh sets, and names
// Go's, wgpu-native's and the build's optional parts.
func TestVersion(t *testing.T) {
	defer func(v, c string) { version, commit = v, c }(version, commit)
	stamped := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/bt-org/bt", Version: "v0.0.0-20261207-0123456789ab+dirty"},
		Deps:      []*debug.Module{{Path: bindingModule, Version: "v1.36.0"}},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef"}, {Key: "vcs.time", Value: "2026-12-07T20:00:00Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	mpi := "none"
	if dist.MPI != "" {
		mpi = dist.MPI
	}
	for _, c := range []struct {
		name, set, rev string
		info           *debug.BuildInfo
		want           []string
	}{
		{"stamped", "", "", stamped, []string{"bt          v0.0.0-20261207-0123456789ab+dirty\n",
			"commit      0123456789abcdef (2026-12-07T20:00:00Z), with uncommitted changes\n", "go          go1.99.1 ",
			"(binding " + bindingModule + " v1.36.0)"}},
		{"release", "v1.2.3", "fedcba9876543210", stamped, []string{"bt          v1.2.3\n", "commit      fedcba9876543210\n"}},
		{"bare", "", "", nil, []string{"bt          (devel)\n", "commit      unknown", "go          " + runtime.Version(), "binding " + bindingModule + " unknown"}},
	} {
		version, commit = c.set, c.rev
		var b bytes.Buffer
		writeVersion(&b, c.info)
		want := append(c.want, "wgpu-native "+gpu.NativeVersion()+" ", runtime.GOOS+"/"+runtime.GOARCH+"\n",
			"MPI         "+mpi, "JPEG        "+pipeline.JPEGDecoder)
		for _, w := range want {
			if !strings.Contains(b.String(), w) {
				t.Errorf("%s: bt version lacks %q:\n%s", c.name, w, b.String())
			}
		}
	}
	if v := gpu.NativeVersion(); strings.HasPrefix(v, "0.") {
		t.Errorf("wgpu-native version %s: the binding reported no major version", v)
	}
	if err := runVersion([]string{"extra"}); err == nil || !strings.Contains(err.Error(), "no arguments") {
		t.Errorf("bt version extra: %v, want an error", err)
	}
}
