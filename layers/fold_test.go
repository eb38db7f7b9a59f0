package layers

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// TestFoldBatchNorm checks that a convolution with a BatchNorm folded in
// computes, in f32, what the float64 convolution followed by evaluation-mode
// BatchNorm (and its ReLU) computes, for fresh random weights, biases, γ, β
// and running statistics, on sizes that are multiples of no tile.
func TestFoldBatchNorm(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, tc := range []struct {
		n, cin, h, w, cout, k, stride int
		bias, affine, relu            bool
	}{
		{1, 1, 1, 1, 1, 1, 1, false, true, true},
		{2, 3, 7, 5, 17, 3, 1, false, true, true},
		{3, 5, 9, 9, 4, 3, 2, true, true, false},
		{2, 3, 17, 13, 5, 7, 2, false, false, true},
		{3, 17, 6, 6, 33, 1, 1, true, false, false},
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			c, err := NewConv2D(d, rng, "conv", tc.cin, tc.cout, tc.k, tc.stride, tc.k/2, tc.bias)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Release()
			b, err := NewBatchNorm(d, "bn", tc.cout, tc.affine)
			if err != nil {
				t.Fatal(err)
			}
			defer b.Release()
			b.ReLU = tc.relu
			upload := func(ts *gpu.Tensor, v []float64) {
				if err := ts.Upload(kcheck.To32(v)); err != nil {
					t.Fatal(err)
				}
			}
			positive := func(n int) []float64 {
				v := kcheck.Normal(rng, n)
				for i := range v {
					v[i] = 0.05 + 2*math.Abs(v[i])
				}
				return v
			}
			mean, variance := kcheck.Normal(rng, tc.cout), positive(tc.cout)
			upload(b.RunningMean, mean)
			upload(b.RunningVar, variance)
			gamma, beta := make([]float64, tc.cout), make([]float64, tc.cout)
			for i := range gamma {
				gamma[i] = 1
			}
			if tc.affine {
				gamma, beta = kcheck.Normal(rng, tc.cout), kcheck.Normal(rng, tc.cout)
				upload(b.Gamma.Value, gamma)
				upload(b.Beta.Value, beta)
			}
			var cb []float64
			if tc.bias {
				cb = kcheck.Normal(rng, tc.cout)
				upload(c.Bias.Value, cb)
			}
			w32, err := c.Weight.Value.Download()
			if err != nil {
				t.Fatal(err)
			}
			x := kcheck.Normal(rng, tc.n*tc.cin*tc.h*tc.w)

			f, err := FoldBatchNorm(c, b)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Release()
			oh, ow := c.OutSize(tc.h, tc.w)
			xt, err := d.FromSlice(kcheck.To32(x), tc.n, tc.cin, tc.h, tc.w)
			if err != nil {
				t.Fatal(err)
			}
			defer xt.Release()
			nan := make([]float32, tc.n*tc.cout*oh*ow)
			for i := range nan {
				nan[i] = float32(math.NaN())
			}
			yt, err := d.FromSlice(nan, tc.n, tc.cout, oh, ow)
			if err != nil {
				t.Fatal(err)
			}
			defer yt.Release()
			forward := f.Forward
			if tc.relu {
				forward = f.ForwardReLU
			}
			if err := d.Run(func(r *gpu.Recorder) error { return forward(r, yt, xt, tc.n, tc.h, tc.w) }); err != nil {
				t.Fatal(err)
			}
			got, err := yt.Download()
			if err != nil {
				t.Fatal(err)
			}

			s := ref.ConvShape{N: tc.n, Cin: tc.cin, H: tc.h, W: tc.w, Cout: tc.cout, KH: tc.k, KW: tc.k, Stride: tc.stride, Pad: tc.k / 2}
			conv := ref.ConvForward(s, x, kcheck.To64(w32), cb)
			want := make([]float64, len(conv))
			ref.BatchNormEval(want, conv, mean, variance, gamma, beta, tc.n, tc.cout, oh*ow, float64(b.Eps))
			if tc.relu {
				for i, v := range want {
					want[i] = max(v, 0)
				}
			}
			if err := ref.Compare(kcheck.To64(got), want, kcheck.Reduction); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestFoldBatchNormRefused(t *testing.T) {
	d := gputest.Device(t)
	c, err := NewConv2D(d, gputest.Rand(t), "conv", 2, 3, 1, 1, 0, false)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Release()
	b, err := NewBatchNorm(d, "bn", 4, true)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if _, err := FoldBatchNorm(c, b); err == nil || !strings.Contains(err.Error(), "4 channels") {
		t.Errorf("folding 4 channels into 3 outputs: got %v, want a refusal", err)
	}
	x, _ := d.NewTensor(1, 2, 2, 2)
	y, _ := d.NewTensor(1, 3, 2, 2)
	defer x.Release()
	defer y.Release()
	if err := d.Run(func(r *gpu.Recorder) error { return c.ForwardReLU(r, y, x, 1, 2, 2) }); err == nil || !strings.Contains(err.Error(), "needs the convolution's bias") {
		t.Errorf("ForwardReLU without a bias: got %v, want a refusal", err)
	}
}
