package augment

import (
	"math"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/augstats"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/pipeline"
)

// TestAugmentStatistics is pipeline's statistical test of the
// augmentations on the device path: the rates of flip, jitter, grayscale,
// blur and solarization are read from the device's outputs, the crops from
// the draws it consumed, with the same table and bounds as the CPU path.
func TestAugmentStatistics(t *testing.T) {
	d := gputest.Device(t)
	augstats.Check(t, func(t testing.TB, v pipeline.ViewConfig, srcs []pipeline.Image8, ps []pipeline.Params) []float32 {
		t.Helper()
		a, err := NewEval(d, v)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		n, c, s := len(srcs), v.Channels(), v.Size
		nan := make([]float32, n*c*s*s)
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		out, err := d.FromSlice(nan, n, c, s, s)
		if err != nil {
			t.Fatal(err)
		}
		defer out.Release()
		b := &pipeline.Batch{N: n, C: c, H: s, W: s, Images: srcs, Params: [][]pipeline.Params{ps}}
		if err := d.Run(func(r *gpu.Recorder) error { return a.Record(r, b, out) }); err != nil {
			t.Fatal(err)
		}
		got, err := out.Download()
		if err != nil {
			t.Fatal(err)
		}
		return got
	})
}
