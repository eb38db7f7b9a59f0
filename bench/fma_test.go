package bench

import (
	"testing"

	"github.com/bt-org/bt/internal/gputest"
)

// BenchmarkFMA reports the adapter's register-only FMA rate at 8 chains
// per invocation, its ceiling for any kernel.
func BenchmarkFMA(b *testing.B) {
	d := gputest.Device(b)
	var r FMAResult
	var err error
	for b.Loop() {
		if r, err = MeasureFMA(d, 8, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.GFLOPS, "GFLOP/s")
}

// TestFMAKernel checks the probe's arithmetic, so that its rate counts work
// that was done: with a = b = 1 every component of a chain gains exactly
// one per multiply-add, which float32 holds exactly at these sizes.
func TestFMAKernel(t *testing.T) {
	d := gputest.Device(t)
	const chains, groups, iters = 3, 2, 5
	f, err := newFMA(d, chains, groups)
	if err != nil {
		t.Fatal(err)
	}
	defer f.y.Release()
	if err := f.run(iters, 1, 1); err != nil {
		t.Fatal(err)
	}
	got, err := f.y.Download()
	if err != nil {
		t.Fatal(err)
	}
	steps := float32(fmaUnroll * iters)
	for i, v := range got {
		// Chain c starts at (i, c, 1, 2) and each component gains steps.
		var want float32
		for c := range chains {
			want += float32(i) + float32(c) + 1 + 2 + 4*steps
		}
		if v != want {
			t.Fatalf("invocation %d of %d: %v, want %v", i, len(got), v, want)
		}
	}
	if err := f.run(0, 1, 1); err == nil {
		t.Error("zero loop trips ran")
	}
	r, err := MeasureFMA(d, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !(r.GFLOPS > 0) || r.Invocations < fmaWG || r.Chains != 1 {
		t.Errorf("implausible result: %+v", r)
	}
}
