package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"runtime/debug"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/pipeline"
)

// version and commit are bt's release version and git commit, set by
// scripts/release.sh with -ldflags "-X main.version=… -X main.commit=…"; a
// plain go build leaves them empty and bt version shows the module's
// version and the VCS stamp from the build information instead (go build
// stamps it unless -buildvcs=false).
var version, commit string

// bindingModule is the WebGPU binding, whose version bt version shows
// beside wgpu-native's.
const bindingModule = "github.com/oliverbestmann/webgpu"

func runVersion(args []string) error {
	fs := flag.NewFlagSet("bt version", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	lastFlags = fs
	synopses[fs] = "Prints bt's version and commit, Go's, wgpu-native's, and the optional parts this binary was built with."
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("bt version takes no arguments, got %q", fs.Args())
	}
	info, _ := debug.ReadBuildInfo()
	writeVersion(os.Stdout, info)
	return nil
}

// writeVersion describes the binary whose build information is info (nil
// where the binary has none).
func writeVersion(w io.Writer, info *debug.BuildInfo) {
	v, rev, binding := version, commit, "unknown"
	goVersion := runtime.Version()
	if info != nil {
		goVersion = info.GoVersion
		if v == "" {
			v = info.Main.Version
		}
		var stamp, when, modified string
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				stamp = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				modified = s.Value
			}
		}
		if rev == "" && stamp != "" {
			rev = stamp
			if when != "" {
				rev += " (" + when + ")"
			}
			if modified == "true" {
				rev += ", with uncommitted changes"
			}
		}
		for _, m := range info.Deps {
			if m.Path == bindingModule {
				binding = m.Version
				if m.Replace != nil {
					binding += " => " + m.Replace.Path + " " + m.Replace.Version
				}
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if rev == "" {
		rev = "unknown (built without VCS information)"
	}
	mpi := "none (scripts/build-mpi.sh builds bt with MPI)"
	if dist.MPI != "" {
		mpi = dist.MPI
	}
	jpeg := "libjpeg-turbo"
	if pipeline.JPEGDecoder != "libjpeg-turbo" {
		jpeg = pipeline.JPEGDecoder + " (Go's decoder: built with -tags nolibjpeg or without cgo)"
	}
	fmt.Fprintf(w, "bt          %s\n", v)
	fmt.Fprintf(w, "commit      %s\n", rev)
	fmt.Fprintf(w, "go          %s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "wgpu-native %s (binding %s %s)\n", gpu.NativeVersion(), bindingModule, binding)
	fmt.Fprintf(w, "MPI         %s\n", mpi)
	fmt.Fprintf(w, "JPEG        %s\n", jpeg)
}
