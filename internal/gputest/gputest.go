// Package gputest holds what bt's tests share: the device they run on, a
// logged random seed, and Check, which runs a kernel against its float64
// reference through kcheck.
package gputest

import (
	"math"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/kcheck"
)

var (
	once    sync.Once
	shared  *gpu.Device
	openErr error

	plainOnce sync.Once
	plain     *gpu.Device
	plainErr  error
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

// SubgroupModes runs f as two subtests (or sub-benchmarks): "subgroups" on
// the shared device, whose reductions use subgroup operations where the
// adapter has them, and "workgroup" on a second device of the same adapter
// opened with Options.NoSubgroups, whose reductions take the
// workgroup-memory fallback. Without subgroups the first is skipped, naming
// why; lavapipe has them, so there a missing feature fails rather than
// skips.
func SubgroupModes[T interface {
	testing.TB
	Run(string, func(T)) bool
}](t T, f func(t T, d *gpu.Device)) {
	t.Helper()
	d := Device(t)
	t.Run("subgroups", func(t T) {
		if !d.Subgroups {
			switch {
			case os.Getenv("BT_NO_SUBGROUPS") != "":
				t.Skip("subgroups are turned off by $BT_NO_SUBGROUPS")
			case IsLavapipe(d):
				t.Fatalf("%s (lavapipe) offers subgroups, but the device has none: the feature was not requested", d.Info)
			}
			t.Skipf("%s has no subgroups feature; its reductions use workgroup memory only", d.Info)
		}
		f(t, d)
	})
	t.Run("workgroup", func(t T) {
		plainOnce.Do(func() { plain, plainErr = gpu.Open(gpu.Options{NoSubgroups: true}) })
		if plainErr != nil {
			t.Fatalf("no device without subgroups to test on: %v", plainErr)
		}
		if plain.Subgroups {
			t.Fatalf("%s opened with NoSubgroups still has subgroups on", plain.Info)
		}
		f(t, plain)
	})
}

// KernelMillis records record with timestamps three times and returns the
// least device time, in milliseconds, of the dispatches whose kernel name
// starts with prefix: a benchmark's figure for the kernels it is about,
// apart from the rest of its step.
func KernelMillis(tb testing.TB, d *gpu.Device, record func(r *gpu.Recorder) error, prefix string) float64 {
	tb.Helper()
	if !d.HasTimestamps() {
		tb.Fatalf("%s has no timestamp queries to time kernels with", d.Info.Name)
	}
	best := math.Inf(1)
	for range 3 {
		r, err := d.Record(true)
		if err != nil {
			tb.Fatal(err)
		}
		if err := record(r); err != nil {
			r.Discard()
			tb.Fatal(err)
		}
		if err := r.Submit(); err != nil {
			tb.Fatal(err)
		}
		ts, err := r.Timings()
		if err != nil {
			tb.Fatal(err)
		}
		ns, found := 0.0, false
		for _, t := range ts {
			if strings.HasPrefix(t.Kernel, prefix) {
				ns += t.Nanos
				found = true
			}
		}
		if !found {
			tb.Fatalf("no dispatch of a kernel named %s… was recorded", prefix)
		}
		best = min(best, ns/1e6)
	}
	return best
}

// IsLavapipe reports whether d is Mesa's CPU Vulkan driver (its adapter is
// named after llvmpipe, the rasteriser it runs on).
func IsLavapipe(d *gpu.Device) bool { return strings.HasPrefix(d.Info.Name, "llvmpipe") }

// Precisions are the activation types a test covers on d: f32, and f16
// where d has shader-f16 (on lavapipe, which has it, its absence fails the
// test; elsewhere the f16 cases are left out with a log line saying so).
func Precisions(t testing.TB, d *gpu.Device) []gpu.DType {
	t.Helper()
	if d.F16 {
		return []gpu.DType{gpu.F32, gpu.F16}
	}
	if IsLavapipe(d) {
		t.Fatalf("%s has no shader-f16, which lavapipe offers: the f16 checks cannot run", d.Info.Name)
	}
	t.Logf("%s has no shader-f16: f32 cases only", d.Info.Name)
	return []gpu.DType{gpu.F32}
}

// NeedF16 ends a test or benchmark of mixed precision on an adapter without
// shader-f16: a skip naming the adapter, except on lavapipe, which has it,
// where its absence fails the test rather than hide the f16 checks in CI.
func NeedF16(t testing.TB, d *gpu.Device) {
	t.Helper()
	switch {
	case d.F16:
	case IsLavapipe(d):
		t.Fatalf("%s has no shader-f16, which lavapipe offers: the f16 checks cannot run", d.Info.Name)
	default:
		t.Skipf("%s has no shader-f16", d.Info.Name)
	}
}

// Rand returns a generator seeded afresh, logging the seed so that a
// failure can be reproduced with BT_SEED.
func Rand(t testing.TB) *rand.Rand {
	t.Helper()
	seed := rand.Uint64()
	if s, err := strconv.ParseUint(os.Getenv("BT_SEED"), 10, 64); err == nil {
		seed = s
	}
	t.Logf("seed %d (set BT_SEED to repeat)", seed)
	return rand.New(rand.NewPCG(seed, 0x9e3779b97f4a7c15))
}

// Check runs op on d and on its reference with fresh random inputs.
func Check(t testing.TB, d *gpu.Device, op kcheck.Op) {
	t.Helper()
	if err := kcheck.Run(d, Rand(t), op); err != nil {
		t.Error(err)
	}
}

// Layer describes a layer for CheckLayer (see kcheck.Layer).
type Layer = kcheck.Layer

// CheckLayer checks a layer three ways (kcheck.RunLayer): the float64
// backward against finite differences of the float64 forward, then the GPU
// forward and the GPU backward against the float64 ones, all on fresh
// random inputs.
func CheckLayer(t *testing.T, d *gpu.Device, l Layer) {
	t.Helper()
	if err := kcheck.RunLayer(d, Rand(t), l); err != nil {
		t.Error(err)
	}
}

// Devices opens n devices on the tests' adapter, released when the test
// ends: one per rank of an in-process group (internal/disttest), since a
// device is used by one goroutine at a time.
func Devices(t testing.TB, n int) []*gpu.Device {
	t.Helper()
	ds := make([]*gpu.Device, n)
	for i := range ds {
		d, err := gpu.Open(gpu.Options{})
		if err != nil {
			t.Fatalf("no device to test on: %v", err)
		}
		t.Cleanup(d.Release)
		ds[i] = d
	}
	return ds
}
