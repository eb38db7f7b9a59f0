package gputest

import (
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/fixture"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// Fixture loads a PyTorch fixture or fails the test.
func Fixture(t testing.TB, path string) *fixture.Fixture {
	t.Helper()
	f, err := fixture.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// Upload puts the fixture's tensor name on the device, released when the
// test ends.
func Upload(t testing.TB, d *gpu.Device, f *fixture.Fixture, name string) *gpu.Tensor {
	t.Helper()
	ft, err := f.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	x, err := d.FromSlice(kcheck.To32(ft.Data), ft.Shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Release)
	return x
}

// Zeros returns a zeroed tensor, released when the test ends.
func Zeros(t testing.TB, d *gpu.Device, shape ...int) *gpu.Tensor {
	t.Helper()
	n := kcheck.Numel(shape)
	x, err := d.FromSlice(make([]float32, n), shape...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(x.Release)
	return x
}

// Expect compares a device tensor with the fixture's tensor name.
func Expect(t testing.TB, got *gpu.Tensor, f *fixture.Fixture, name string, tol float64) {
	t.Helper()
	want, err := f.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	g, err := got.Download()
	if err != nil {
		t.Fatal(err)
	}
	if err := ref.Compare(kcheck.To64(g), want.Data, tol); err != nil {
		t.Errorf("%s: %v", name, err)
	}
}
