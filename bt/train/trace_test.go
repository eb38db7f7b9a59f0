package train

import (
	"bytes"
	"context"
	"testing"

	"github.com/bt-org/bt/trace"
)

// TestTraceWindow traces steps 2 and 3 of a short run: the file parses,
// its spans nest and its device spans lie inside their submissions; only
// those steps are there, each with its data wait, recording, submission
// and loss readback, and one submission each.
func TestTraceWindow(t *testing.T) {
	s := newSmallRun(t, 1, 0, t.TempDir(), 0)
	tr := trace.New()
	s.d.SetTrace(tr)
	defer s.d.SetTrace(nil)
	s.loop.TraceSteps = trace.Window{From: 2, To: 4}
	hooked := 0
	s.loop.Hooks = append(s.loop.Hooks, Hook{Name: "count", Fn: func(*Loop, Event) error { hooked++; return nil }})
	if err := s.loop.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := s.d.FlushTrace(); err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if _, err := tr.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	f, err := trace.Read(&b)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Check(f); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	var steps []float64
	for _, e := range f.TraceEvents {
		switch {
		case e.Phase == "X" && e.TID == int(trace.Device):
			count["device"]++
		case e.Phase == "X" || e.Phase == "b":
			count[e.Name]++
		}
		if e.Name == "step" {
			steps = append(steps, e.Args["step"].(float64))
		}
	}
	if len(steps) != 2 || steps[0] != 2 || steps[1] != 3 {
		t.Errorf("traced steps %v, want [2 3]", steps)
	}
	// Each step reads back two things: its loss and the embeddings'
	// spread (the collapse watch's figures).
	for name, perStep := range map[string]int{"data wait": 1, "record": 1, "submit": 1, "submission": 1, "readback": 2, "hook count": 1} {
		if count[name] != 2*perStep {
			t.Errorf("%d %q spans, want %d in each traced step (all: %v)", count[name], name, perStep, count)
		}
	}
	if count["checkpoint"] != 0 {
		t.Errorf("the final checkpoint, after the window, was traced: %v", count)
	}
	if s.d.HasTimestamps() && count["device"] < 2*50 {
		t.Errorf("%d device spans in two steps, want every dispatch of both (over 50 a step)", count["device"])
	}
	if hooked != s.loop.Steps() {
		t.Errorf("the hook ran %d times over %d steps", hooked, s.loop.Steps())
	}
}
