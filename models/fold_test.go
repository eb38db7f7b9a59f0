package models

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// randomiseBN gives every BatchNorm of m fresh random running statistics,
// γ (of both signs) and β, as training would leave them, so that folding
// is checked on more than the initial identity.
func randomiseBN(t *testing.T, rng *rand.Rand, m *ResNet) {
	t.Helper()
	draw := func(n int, f func() float64) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(f())
		}
		return v
	}
	for _, b := range m.BatchNorms() {
		for _, x := range []struct {
			t *gpu.Tensor
			v []float32
		}{
			{b.RunningMean, draw(b.C, func() float64 { return 0.5 * rng.NormFloat64() })},
			{b.RunningVar, draw(b.C, func() float64 { return 0.5 + 1.5*rng.Float64() })},
			{b.Gamma.Value, draw(b.C, func() float64 { return math.Copysign(0.5+rng.Float64(), rng.NormFloat64()) })},
			{b.Beta.Value, draw(b.C, func() float64 { return 0.3 * rng.NormFloat64() })},
		} {
			if err := x.t.Upload(x.v); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// features runs m's evaluation forward over x [n, c, h, w].
func features(t *testing.T, d *gpu.Device, m *ResNet, x []float32, n, h, w int) []float64 {
	t.Helper()
	xt, err := d.FromSlice(x, n, m.InChannels, h, w)
	if err != nil {
		t.Fatal(err)
	}
	defer xt.Release()
	nan := make([]float32, n*m.Dim)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	repr, err := d.FromSlice(nan, n, m.Dim)
	if err != nil {
		t.Fatal(err)
	}
	defer repr.Release()
	p := NewPass(d, false)
	defer p.Release()
	if err := d.Run(func(r *gpu.Recorder) error { return m.Forward(r, p, repr, xt, n, h, w) }); err != nil {
		t.Fatal(err)
	}
	v, err := repr.Download()
	if err != nil {
		t.Fatal(err)
	}
	return kcheck.To64(v)
}

// TestFold checks that a backbone with its BatchNorms folded into its
// convolutions gives the features of its evaluation forward, within
// kcheck.Reduction (relative 1e-4: both run in f32, and the folded weights
// round differently), for fresh random weights, BatchNorm parameters and
// running statistics, on sizes that are multiples of no tile: the small
// stem with basic blocks, and the ImageNet stem with its pooling and
// bottleneck blocks. The layer-level fold is checked against float64 in
// layers.TestFoldBatchNorm.
func TestFold(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, tc := range []struct {
		cfg     Config
		n, h, w int
	}{
		{Config{Arch: "tiny", InChannels: 1}, 3, 13, 11},
		{Config{Arch: "resnet18", InChannels: 3}, 2, 33, 29},
		{Config{Arch: "resnet50", InChannels: 3}, 1, 17, 19},
	} {
		t.Run(fmt.Sprintf("%s %dx%dx%d", tc.cfg.Arch, tc.n, tc.h, tc.w), func(t *testing.T) {
			m, err := NewResNet(d, rng, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Release()
			randomiseBN(t, rng, m)
			x := kcheck.To32(kcheck.Normal(rng, tc.n*tc.cfg.InChannels*tc.h*tc.w))
			want := features(t, d, m, x, tc.n, tc.h, tc.w)

			f, err := Fold(m)
			if err != nil {
				t.Fatal(err)
			}
			if len(f.BatchNorms()) != 0 {
				t.Errorf("the folded network keeps %d BatchNorms", len(f.BatchNorms()))
			}
			got := features(t, d, f, x, tc.n, tc.h, tc.w)
			if err := ref.Compare(got, want, kcheck.Reduction); err != nil {
				t.Errorf("folded features: %v", err)
			}
			p := NewPass(d, true)
			defer p.Release()
			repr, _ := d.NewTensor(tc.n, f.Dim)
			defer repr.Release()
			xt, _ := d.FromSlice(x, tc.n, tc.cfg.InChannels, tc.h, tc.w)
			defer xt.Release()
			if err := d.Run(func(r *gpu.Recorder) error { return f.Forward(r, p, repr, xt, tc.n, tc.h, tc.w) }); err == nil || !strings.Contains(err.Error(), "evaluation passes only") {
				t.Errorf("a training pass through the folded network: got %v, want a refusal", err)
			}
			// The copy is the copy's: releasing it leaves m as it was.
			f.Release()
			if err := ref.Compare(features(t, d, m, x, tc.n, tc.h, tc.w), want, 0); err != nil {
				t.Errorf("the network after its folded copy was released: %v", err)
			}
		})
	}
}
