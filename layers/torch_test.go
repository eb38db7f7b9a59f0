package layers

import (
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
)

// TestConv2DTorch replays PyTorch's nn.Conv2d (tools/fixtures/conv_linear.py).
func TestConv2DTorch(t *testing.T) {
	d := gputest.Device(t)
	for _, name := range []string{"conv_3x3_s1", "conv_3x3_s2", "conv_7x7_s2", "conv_1x1_s2"} {
		t.Run(name, func(t *testing.T) {
			f := gputest.Fixture(t, "testdata/"+name+".json")
			meta := func(k string) int {
				v, err := f.Int(k)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			n, h, w := meta("n"), meta("h"), meta("w")
			c := &Conv2D{Cin: meta("cin"), Cout: meta("cout"), K: meta("k"), Stride: meta("stride"), Pad: meta("pad")}
			c.Weight = &Param{Value: gputest.Upload(t, d, f, "weight"), Grad: gputest.Zeros(t, d, c.Cout, c.Cin, c.K, c.K)}
			if meta("bias") == 1 {
				c.Bias = &Param{Value: gputest.Upload(t, d, f, "bias"), Grad: gputest.Zeros(t, d, c.Cout)}
			}
			oh, ow := c.OutSize(h, w)
			x, dy := gputest.Upload(t, d, f, "x"), gputest.Upload(t, d, f, "dy")
			y, dx := gputest.Zeros(t, d, n, c.Cout, oh, ow), gputest.Zeros(t, d, n, c.Cin, h, w)
			if err := d.Run(func(r *gpu.Recorder) error {
				if err := c.Forward(r, y, x, n, h, w); err != nil {
					return err
				}
				return c.Backward(r, dx, dy, x, n, h, w)
			}); err != nil {
				t.Fatal(err)
			}
			gputest.Expect(t, y, f, "y", kcheck.Reduction)
			gputest.Expect(t, dx, f, "dx", kcheck.Reduction)
			gputest.Expect(t, c.Weight.Grad, f, "dweight", kcheck.Reduction)
			if c.Bias != nil {
				gputest.Expect(t, c.Bias.Grad, f, "dbias", kcheck.Reduction)
			}
		})
	}
}

// TestLinearTorch replays PyTorch's nn.Linear.
func TestLinearTorch(t *testing.T) {
	d := gputest.Device(t)
	f := gputest.Fixture(t, "testdata/linear.json")
	const n, in, out = 5, 17, 9
	l := &Linear{In: in, Out: out,
		Weight: &Param{Value: gputest.Upload(t, d, f, "weight"), Grad: gputest.Zeros(t, d, out, in)},
		Bias:   &Param{Value: gputest.Upload(t, d, f, "bias"), Grad: gputest.Zeros(t, d, out)}}
	x, dy := gputest.Upload(t, d, f, "x"), gputest.Upload(t, d, f, "dy")
	y, dx := gputest.Zeros(t, d, n, out), gputest.Zeros(t, d, n, in)
	if err := d.Run(func(r *gpu.Recorder) error {
		if err := l.Forward(r, y, x, n); err != nil {
			return err
		}
		return l.Backward(r, dx, dy, x, n)
	}); err != nil {
		t.Fatal(err)
	}
	gputest.Expect(t, y, f, "y", kcheck.Reduction)
	gputest.Expect(t, dx, f, "dx", kcheck.Reduction)
	gputest.Expect(t, l.Weight.Grad, f, "dweight", kcheck.Reduction)
	gputest.Expect(t, l.Bias.Grad, f, "dbias", kcheck.Reduction)
}

// TestCrossEntropyTorch replays F.cross_entropy (mean over the batch).
func TestCrossEntropyTorch(t *testing.T) {
	d := gputest.Device(t)
	f := gputest.Fixture(t, "testdata/cross_entropy.json")
	const n, k = 6, 11
	logits, labels := gputest.Upload(t, d, f, "logits"), gputest.Upload(t, d, f, "labels")
	loss, dlogits := gputest.Zeros(t, d, n), gputest.Zeros(t, d, n, k)
	if err := d.Run(func(r *gpu.Recorder) error {
		if err := CrossEntropyForward(r, loss, logits, labels, n, k); err != nil {
			return err
		}
		return CrossEntropyBackward(r, dlogits, logits, labels, n, k)
	}); err != nil {
		t.Fatal(err)
	}
	gputest.Expect(t, loss, f, "loss", kcheck.Reduction)
	gputest.Expect(t, dlogits, f, "dlogits", kcheck.Reduction)
}
