// Package gputest holds what bt's tests share: the device they run on, a
// logged random seed, and Check, which runs a kernel against its float64
// reference through kcheck.
package gputest

import (
	"math/rand/v2"
	"os"
	"strconv"
	"sync"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/kcheck"
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
