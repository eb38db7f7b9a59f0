package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bt-org/bt/trace"
)

// TestEvalTrace runs bt eval with -trace on synthetic data: the file
// parses, its spans nest, its device spans lie in their submissions, and
// the evaluation's steps are there. A second run refuses to overwrite it,
// and a trace in a missing directory is refused.
func TestEvalTrace(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "eval.json")
	args := []string{"-random", "-data", "synthetic", "-eval-train", "64", "-eval-test", "32", "-eval-batch", "16", "-probe-epochs", "2", "-trace", path, "knn", "linear", "-fast"}
	if err := runEval(args); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := trace.Read(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Check(f); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, e := range f.TraceEvents {
		count[e.Name]++
	}
	// 96 images in batches of 16, extracted once for both modes (each
	// split's loader ends with one more wait, for its end), then one block
	// of similarities.
	for name, want := range map[string]int{"knn": 1, "linear": 1, "linear probe": 1, "data wait": 4 + 1 + 2 + 1, "readback": 6 + 1} {
		if count[name] != want {
			t.Errorf("%d %q spans, want %d (all: %v)", count[name], name, want, count)
		}
	}
	if err := runEval(args); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Errorf("a second run over the trace: %v, want a refusal", err)
	}
	args[len(args)-4] = filepath.Join(dir, "missing", "eval.json")
	if err := runEval(args); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Errorf("a trace in a missing directory: %v, want a refusal", err)
	}
}

// TestBenchTrace runs bt bench's twin suite with -trace on a small
// network: the file parses, its spans nest (trace.Check), the trainer's
// recordings and submissions lie inside the suite's span, and where the
// adapter has timestamps the device spans are there too.
func TestBenchTrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bench.json")
	if err := runBench([]string{"-suites", "twin", "-arch", "tiny", "-batch", "4", "-size", "9", "-projector", "16-16-16", "-time", "1ms", "-trace", path}); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	f, err := trace.Read(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Check(f); err != nil {
		t.Fatal(err)
	}
	at := -1
	for i, e := range f.TraceEvents {
		if e.Phase == "X" && e.Name == "twin" {
			at = i
		}
	}
	if at < 0 {
		t.Fatalf("no span of the twin suite in %d events", len(f.TraceEvents))
	}
	suite := f.TraceEvents[at]
	count := map[string]int{}
	for i, e := range f.TraceEvents {
		if e.Phase != "X" || e.TID != int(trace.Host) || i == at {
			continue
		}
		count[e.Name]++
		if e.TS < suite.TS || e.TS+e.Dur > suite.TS+suite.Dur {
			t.Errorf("host span %s [%.1f, +%.1f] µs lies outside the suite's [%.1f, +%.1f]", e.Name, e.TS, e.Dur, suite.TS, suite.Dur)
		}
	}
	// At least the two warm-up steps and one measured step.
	for _, name := range []string{"record", "submit"} {
		if count[name] < 3 {
			t.Errorf("%d %q spans inside the twin suite, want one a step, at least 3 (all: %v)", count[name], name, count)
		}
	}
}
