package gpu_test

import (
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// TestBindGroupReuse records the same work twice, as consecutive training
// steps do: the second recording creates no bind group. Work over other
// tensors, and work after Trim has destroyed the pooled buffers, binds
// what it names, not a kept group of the same shape: every result is
// checked against float64.
func TestBindGroupReuse(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const n = 1031
	draw := func() ([]float64, *gpu.Tensor) {
		v := kcheck.Normal(rng, n)
		x, err := d.FromSlice(kcheck.To32(v), n)
		if err != nil {
			t.Fatal(err)
		}
		return v, x
	}
	check := func(name string, y *gpu.Tensor, a, b []float64) {
		t.Helper()
		got, err := y.Download()
		if err != nil {
			t.Fatal(err)
		}
		want := make([]float64, n)
		for i := range want {
			want[i] = a[i] + b[i]
		}
		if err := ref.Compare(kcheck.To64(got), want, kcheck.Elementwise); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	av, a := draw()
	bv, b := draw()
	cv, c := draw()
	_, y := draw()
	defer func() {
		for _, x := range []*gpu.Tensor{a, b, c, y} {
			x.Release()
		}
	}()
	add := func(x, z *gpu.Tensor) {
		t.Helper()
		if err := d.Run(func(r *gpu.Recorder) error { return gpu.Add(r, y, x, z) }); err != nil {
			t.Fatal(err)
		}
	}
	add(a, b)
	check("first recording", y, av, bv)
	hits, misses := d.BindGroupStats()
	add(a, b)
	check("second recording", y, av, bv)
	if h, m := d.BindGroupStats(); h != hits+1 || m != misses {
		t.Errorf("the same dispatch again: %d hits and %d misses more, want 1 and 0", h-hits, m-misses)
	}
	add(a, c)
	check("other tensors", y, av, cv)
	d.Trim()
	_, misses = d.BindGroupStats()
	dv, e := draw() // may reuse a buffer Trim left; the kept groups are gone
	defer e.Release()
	add(a, e)
	check("after Trim", y, av, dv)
	if _, m := d.BindGroupStats(); m != misses+1 {
		t.Errorf("after Trim: %d bind groups created, want 1", m-misses)
	}
}
