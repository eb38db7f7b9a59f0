package gpu_test

import (
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/ref"
)

// convShapes cover the kernels of a ResNet (1×1, 3×3, 7×7; stride 1 and 2)
// on sizes that are multiples of no tile, and a long weight-gradient
// reduction that is split into chunks.
var convShapes = []gpu.ConvShape{
	{N: 1, Cin: 1, H: 1, W: 1, Cout: 1, KH: 1, KW: 1, Stride: 1, Pad: 0},
	{N: 2, Cin: 3, H: 7, W: 5, Cout: 17, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 3, Cin: 5, H: 9, W: 9, Cout: 4, KH: 3, KW: 3, Stride: 2, Pad: 1},
	{N: 2, Cin: 3, H: 17, W: 13, Cout: 5, KH: 7, KW: 7, Stride: 2, Pad: 3},
	{N: 2, Cin: 17, H: 6, W: 6, Cout: 33, KH: 1, KW: 1, Stride: 1, Pad: 0},
	{N: 3, Cin: 8, H: 9, W: 7, Cout: 65, KH: 1, KW: 1, Stride: 2, Pad: 0},
	{N: 65, Cin: 2, H: 8, W: 8, Cout: 3, KH: 3, KW: 3, Stride: 1, Pad: 1},
	// Data-gradient phases: an even kernel, and a stride above the kernel
	// and the input's height, so that some phases have no pixels or no taps.
	{N: 2, Cin: 5, H: 10, W: 11, Cout: 6, KH: 4, KW: 4, Stride: 2, Pad: 1},
	{N: 2, Cin: 3, H: 2, W: 7, Cout: 4, KH: 2, KW: 3, Stride: 3, Pad: 1},
}

func refShape(s gpu.ConvShape) ref.ConvShape {
	return ref.ConvShape{N: s.N, Cin: s.Cin, H: s.H, W: s.W, Cout: s.Cout, KH: s.KH, KW: s.KW, Stride: s.Stride, Pad: s.Pad}
}

func TestConvValidation(t *testing.T) {
	d := gputest.Device(t)
	x, _ := d.NewTensor(1, 2, 4, 4)
	w, _ := d.NewTensor(3, 2, 3, 3)
	y, _ := d.NewTensor(1, 3, 4, 4)
	defer x.Release()
	defer w.Release()
	defer y.Release()
	for _, tc := range []struct {
		s    gpu.ConvShape
		want string
	}{
		{gpu.ConvShape{N: 1, Cin: 2, H: 4, W: 4, Cout: 3, KH: 3, KW: 3, Stride: 1, Pad: 0}, "out is [1 3 4 4], needs 12 elements"},
		{gpu.ConvShape{N: 1, Cin: 2, H: 2, W: 2, Cout: 3, KH: 5, KW: 5, Stride: 1, Pad: 0}, "kernel must fit"},
		{gpu.ConvShape{N: 1, Cin: 2, H: 4, W: 4, Cout: 3, KH: 3, KW: 3, Stride: 0, Pad: 1}, "sizes must be ≥ 1"},
	} {
		err := d.Run(func(r *gpu.Recorder) error { return gpu.ConvForward(r, y, x, w, tc.s) })
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want %q", tc.s, err, tc.want)
		}
	}
	good := gpu.ConvShape{N: 1, Cin: 2, H: 4, W: 4, Cout: 3, KH: 3, KW: 3, Stride: 1, Pad: 1}
	for _, tiles := range [][]gpu.ConvTiles{{gpu.ConvTiles(7)}, {gpu.ConvTilesStaged, gpu.ConvTilesPerImage}} {
		err := d.Run(func(r *gpu.Recorder) error { return gpu.ConvForward(r, y, x, w, good, tiles...) })
		if err == nil || !strings.Contains(err.Error(), "want at most one of") {
			t.Errorf("tiles %v: got %v, want a refusal", tiles, err)
		}
	}
}

// TestConvLongReduction covers a weight gradient whose reduction (N·OH·OW,
// 5.2 million) would exceed, in the chunks the split aims for, the loop
// iterations a CPU adapter runs per invocation (gpu.MaxLoopSteps): lavapipe
// would end the loops early and return a partial sum. Eight weights, not
// one: a single output is a sum of random signs that now and then nearly
// cancels, and its relative error then says nothing of the kernel. The
// tolerance is 1e-3, not the reductions' 1e-4: float32 sums of 5.2 million
// terms keep fewer digits than short ones, and seeds reached 2.7e-4 with a
// correct kernel (BT_SEED=14112628225863231844); a partial sum, the bug
// this guards against, is off by tens of percent.
func TestConvLongReduction(t *testing.T) {
	checkConvPasses(t, gputest.Device(t), gpu.ConvShape{N: 80, Cin: 4, H: 256, W: 256, Cout: 2, KH: 1, KW: 1, Stride: 1, Pad: 0}, 1e-3, gpu.F32, gpu.ConvTilesAuto)
}
