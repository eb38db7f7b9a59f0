// Package gputest checks GPU kernels against float64 references: fresh
// random inputs every run, outputs poisoned with NaN before the kernel runs,
// every element checked to have been written, and the relative error
// ‖out−ref‖/‖ref‖ compared with a stated tolerance.
package gputest

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/bt-org/bt/gpu"
)

// Tolerances for fp32 kernels against float64 references.
const (
	Elementwise = 1e-5
	Reduction   = 1e-4
)

var (
	once    sync.Once
	shared  *gpu.Device
	openErr error
)

// Device returns the adapter the tests run on ($BT_ADAPTER or the best one),
// opened once per test binary. A missing adapter fails the test: the tests
// are the proof that the kernels work, so they never skip.
func Device(t testing.TB) *gpu.Device {
	t.Helper()
	once.Do(func() { shared, openErr = gpu.Open(gpu.Options{}) })
	if openErr != nil {
		t.Fatalf("no device to test on: %v", openErr)
	}
	return shared
}

// Rand returns a generator seeded from the clock, logging the seed so that
// a failure can be reproduced with BT_SEED.
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := rand.Uint64()
	if s, ok := lookupSeed(); ok {
		seed = s
	}
	t.Logf("seed %d (set BT_SEED to repeat)", seed)
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// Normal fills a slice of n standard normal values.
func Normal(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

// Op is one kernel under test.
type Op struct {
	// Inputs are the shapes of the input tensors, drawn from N(0, 1) unless
	// Draw is set.
	Inputs [][]int
	// Outputs are the shapes of the output tensors. Unless Accumulate marks
	// an output, it is filled with NaN before the kernel runs and the
	// reference receives it zeroed; accumulated outputs start from random
	// values that the reference receives too.
	Outputs    [][]int
	Accumulate []bool
	// Draw, if set, draws input i's values instead of N(0, 1).
	Draw func(r *rand.Rand, i, n int) []float64
	// GPU records the kernel.
	GPU func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error
	// Ref computes the outputs in float64.
	Ref func(outs, ins [][]float64)
	// Tol is the largest relative error allowed for every output.
	Tol float64
}

// Check runs op on the device and on its reference and compares them.
func Check(t testing.TB, d *gpu.Device, op Op) {
	t.Helper()
	rng := Rand(t)
	var release []*gpu.Tensor
	defer func() {
		for _, x := range release {
			x.Release()
		}
	}()
	alloc := func(vals []float64, shape []int) *gpu.Tensor {
		x, err := d.FromSlice(To32(vals), shape...)
		if err != nil {
			t.Fatal(err)
		}
		release = append(release, x)
		return x
	}
	ins := make([][]float64, len(op.Inputs))
	gins := make([]*gpu.Tensor, len(op.Inputs))
	for i, s := range op.Inputs {
		if op.Draw != nil {
			ins[i] = op.Draw(rng, i, numel(s))
		} else {
			ins[i] = Normal(rng, numel(s))
		}
		// The reference sees exactly the float32 values the GPU sees.
		ins[i] = To64(To32(ins[i]))
		gins[i] = alloc(ins[i], s)
	}
	outs := make([][]float64, len(op.Outputs))
	gouts := make([]*gpu.Tensor, len(op.Outputs))
	for i, s := range op.Outputs {
		n := numel(s)
		if i < len(op.Accumulate) && op.Accumulate[i] {
			outs[i] = To64(To32(Normal(rng, n)))
			gouts[i] = alloc(outs[i], s)
		} else {
			outs[i] = make([]float64, n)
			gouts[i] = alloc(nans(n), s)
		}
	}
	if err := d.Run(func(r *gpu.Recorder) error { return op.GPU(r, gouts, gins) }); err != nil {
		t.Fatal(err)
	}
	op.Ref(outs, ins)
	for i, g := range gouts {
		got, err := g.Download()
		if err != nil {
			t.Fatal(err)
		}
		if err := Compare(To64(got), outs[i], op.Tol); err != nil {
			t.Errorf("output %d %v: %v", i, op.Outputs[i], err)
		}
	}
}

// Compare checks that got has no NaN where want has none (an element the
// kernel never wrote keeps its NaN poison) and that ‖got−want‖/‖want‖ ≤ tol,
// or ‖got−want‖ ≤ tol where want is all zero.
func Compare(got, want []float64, tol float64) error {
	if len(got) != len(want) {
		return fmt.Errorf("got %d values, want %d", len(got), len(want))
	}
	var diff, norm float64
	for i := range got {
		if math.IsNaN(got[i]) != math.IsNaN(want[i]) || math.IsInf(got[i], 0) != math.IsInf(want[i], 0) {
			return fmt.Errorf("element %d is %v, want %v (unwritten or overflowed)", i, got[i], want[i])
		}
		if math.IsNaN(want[i]) || math.IsInf(want[i], 0) {
			continue
		}
		d := got[i] - want[i]
		diff += d * d
		norm += want[i] * want[i]
	}
	rel := math.Sqrt(diff)
	if norm > 0 {
		rel /= math.Sqrt(norm)
	}
	if !(rel <= tol) {
		return fmt.Errorf("relative error %.3g exceeds %.3g", rel, tol)
	}
	return nil
}

func numel(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

func nans(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

// To32 converts to float32.
func To32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// To64 converts to float64.
func To64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

func lookupSeed() (uint64, bool) {
	s := os.Getenv("BT_SEED")
	if s == "" {
		return 0, false
	}
	v, err := strconv.ParseUint(s, 10, 64)
	return v, err == nil
}
