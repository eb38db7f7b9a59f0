package trace_test

import (
	"fmt"
	"os"

	"github.com/bt-org/bt/trace"
)

// A trace of host spans, written for chrome://tracing or ui.perfetto.dev.
// With a device, gpu.Device.SetTrace(t) adds its uploads, submissions and
// waits, and FlushTrace its dispatches, before the trace is written.
func Example() {
	t := trace.New()
	step := t.Begin("step", trace.Arg{Key: "step", Value: 1})
	t.Begin("record").End()
	step.End()
	for _, e := range t.Events() {
		if e.Phase == "X" {
			fmt.Println(e.Name, e.Args)
		}
	}
	f, err := os.CreateTemp("", "trace-*.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := t.WriteTo(f); err != nil {
		fmt.Println(err)
	}
	// Output:
	// record map[]
	// step map[step:1]
}
