package gpu_test

import (
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/selfcheck"
)

// vecShapes reach the direct tiles' vec4 reads of A (reductions and
// weight-gradient planes that are multiples of 4), with row counts that
// are not multiples of the 16-row tile, and a split reduction.
var vecShapes = []gpu.ConvShape{
	{N: 3, Cin: 4, H: 5, W: 5, Cout: 8, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 5, Cin: 4, H: 8, W: 8, Cout: 20, KH: 3, KW: 3, Stride: 2, Pad: 1},
	{N: 40, Cin: 4, H: 8, W: 8, Cout: 3, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 2, Cin: 1, H: 6, W: 6, Cout: 17, KH: 3, KW: 3, Stride: 1, Pad: 1},
	{N: 3, Cin: 20, H: 5, W: 3, Cout: 4, KH: 1, KW: 1, Stride: 1, Pad: 0},
}

// TestConvPaths checks every convolution pass with each kind of tile: the
// direct tiles CPU adapters get, over all images at once or image by image,
// and the staged tiles GPUs get (forced here, so that lavapipe runs all).
func TestConvPaths(t *testing.T) {
	d := gputest.Device(t)
	for _, tiles := range gpu.ConvTileChoices() {
		t.Run(tiles.String(), func(t *testing.T) {
			for _, s := range append(append([]gpu.ConvShape{}, convShapes...), vecShapes...) {
				checkConvPasses(t, d, s, kcheck.Reduction, gpu.F32, tiles)
			}
		})
	}
}

// checkConvPasses checks the three passes of a convolution against float64
// (selfcheck.ConvOps).
func checkConvPasses(t *testing.T, d *gpu.Device, s gpu.ConvShape, tol float64, act gpu.DType, tiles gpu.ConvTiles) {
	for _, c := range selfcheck.ConvOps(s, tol, act, tiles) {
		t.Run(c.Name, func(t *testing.T) { gputest.Check(t, d, c.Op) })
	}
}

// TestConvHalf checks the convolution passes with activations and
// weights stored as f16 (mixed precision): the forward pass and the data
// gradient write f16, held to HalfStorage; the weight gradient
// accumulates into f32 master gradients, held to Reduction. Both kinds of
// tile run, on shapes that reach the vec4 reads of A.
func TestConvHalf(t *testing.T) {
	d := gputest.Device(t)
	gputest.NeedF16(t, d)
	for _, tiles := range []gpu.ConvTiles{gpu.ConvTilesAuto, gpu.ConvTilesStaged} {
		t.Run(tiles.String(), func(t *testing.T) {
			for _, s := range []gpu.ConvShape{convShapes[0], vecShapes[0], vecShapes[1], vecShapes[4]} {
				checkConvPasses(t, d, s, kcheck.Reduction, gpu.F16, tiles)
			}
		})
	}
}
