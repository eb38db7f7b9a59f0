package main

import (
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/trace"
)

// traceFlags are -trace and, for training, -trace-steps.
type traceFlags struct {
	path   string
	window trace.Window
}

// defaultTraceSteps skips step 0, whose recording compiles the kernels.
var defaultTraceSteps = trace.Window{From: 1, To: 4}

func (tf *traceFlags) register(fs *flag.FlagSet, steps bool) {
	fs.StringVar(&tf.path, "trace", "", "write a Chrome/Perfetto trace (JSON; chrome://tracing, ui.perfetto.dev) of host and device work to this new file")
	if steps {
		tf.window = defaultTraceSteps
		fs.Var(windowFlag{&tf.window}, "trace-steps", "with -trace, the steps traced, FROM:TO (steps FROM to TO-1, from 0)")
	}
}

type windowFlag struct{ w *trace.Window }

func (f windowFlag) String() string {
	if f.w == nil {
		return defaultTraceSteps.String()
	}
	return f.w.String()
}

func (windowFlag) placeholder() string { return "from:to" }

func (f windowFlag) Set(s string) error {
	w, err := trace.ParseWindow(s)
	if err != nil {
		return errors.New("want FROM:TO with 0 ≤ FROM < TO")
	}
	*f.w = w
	return nil
}

// start creates the trace file, refusing one that exists or a directory
// that does not, before anything runs, and traces d into it; finish
// collects the device's spans and writes the file, whether or not the
// work traced succeeded. Without -trace both do nothing.
func (tf *traceFlags) start(d *gpu.Device) (finish func() error, err error) {
	if tf.path == "" {
		return func() error { return nil }, nil
	}
	if dir := filepath.Dir(tf.path); dir != "" {
		if st, err := os.Stat(dir); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("-trace %s: the directory %s does not exist", tf.path, dir)
		}
	}
	f, err := os.OpenFile(tf.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("-trace %s: the file exists; name a new one (bt does not overwrite a trace)", tf.path)
	}
	if err != nil {
		return nil, fmt.Errorf("-trace: %w", err)
	}
	tr := trace.New()
	d.SetTrace(tr)
	return func() error {
		defer d.SetTrace(nil)
		flushErr := d.FlushTrace()
		_, err := tr.WriteTo(f)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err = errors.Join(flushErr, err); err != nil {
			return fmt.Errorf("-trace %s: %w", tf.path, err)
		}
		note := ""
		if !d.HasTimestamps() {
			note = "; host spans only: the adapter has no timestamp queries"
		}
		fmt.Fprintf(os.Stderr, "trace    %s (open in ui.perfetto.dev or chrome://tracing%s)\n", tf.path, note)
		return nil
	}, nil
}
