package gpu_test

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
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
	for _, path := range []string{"direct", "direct-per-image", "staged"} {
		t.Run(path, func(t *testing.T) {
			switch path {
			case "direct-per-image":
				defer gpu.PerImageConv()()
			case "staged":
				defer gpu.StageConvTiles()()
			}
			for _, s := range append(append([]gpu.ConvShape{}, convShapes...), vecShapes...) {
				checkConvPasses(t, d, s, kcheck.Reduction)
			}
		})
	}
}

// checkConvPasses checks the three passes of a convolution against float64
// within tol.
func checkConvPasses(t *testing.T, d *gpu.Device, s gpu.ConvShape, tol float64) {
	checkConvPassesOf(t, d, s, tol, gpu.F32)
}

// checkConvPassesOf is checkConvPasses with activations, weights and the
// data gradients stored as act: with f16, the forward pass and the data
// gradient, stored as f16, are held to HalfStorage, and the weight
// gradient, accumulated into f32, to tol.
func checkConvPassesOf(t *testing.T, d *gpu.Device, s gpu.ConvShape, tol float64, act gpu.DType) {
	oh, ow := s.Out()
	xs := []int{s.N, s.Cin, s.H, s.W}
	ws := []int{s.Cout, s.Cin, s.KH, s.KW}
	ys := []int{s.N, s.Cout, oh, ow}
	rs := refShape(s)
	name := fmt.Sprintf("%dx%dx%dx%d-%dk%ds%dp%d", s.N, s.Cin, s.H, s.W, s.Cout, s.KH, s.Stride, s.Pad)
	stored, acts := tol, []gpu.DType{act, act, act}
	if act == gpu.F16 {
		stored = kcheck.HalfStorage
	}
	for _, c := range []struct {
		pass string
		op   kcheck.Op
	}{
		{"forward", kcheck.Op{Inputs: [][]int{xs, ws}, Outputs: [][]int{ys}, Tol: stored, InTypes: acts[:2], OutTypes: acts[:1],
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ConvForward(r, o[0], i[0], i[1], s) },
			Ref: func(o, i [][]float64) { copy(o[0], ref.ConvForward(rs, i[0], i[1], nil)) }}},
		{"data", kcheck.Op{Inputs: [][]int{ys, ws, xs}, Outputs: [][]int{xs}, Tol: stored, InTypes: acts, OutTypes: acts[:1],
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ConvBackwardData(r, o[0], i[0], i[1], s) },
			Ref: func(o, i [][]float64) {
				dx, _, _ := ref.ConvBackward(rs, i[2], i[1], nil, i[0])
				copy(o[0], dx)
			}}},
		{"weight", kcheck.Op{Inputs: [][]int{ys, xs}, Outputs: [][]int{ws}, Accumulate: []bool{true}, Tol: tol, InTypes: acts[:2],
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ConvBackwardWeight(r, o[0], i[0], i[1], s) },
			Ref: func(o, i [][]float64) {
				_, dw, _ := ref.ConvBackward(rs, i[1], make([]float64, len(o[0])), nil, i[0])
				for j := range dw {
					o[0][j] += dw[j]
				}
			}}},
	} {
		t.Run(c.pass+"/"+name, func(t *testing.T) { gputest.Check(t, d, c.op) })
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
	for _, path := range []string{"direct", "staged"} {
		t.Run(path, func(t *testing.T) {
			if path == "staged" {
				defer gpu.StageConvTiles()()
			}
			for _, s := range []gpu.ConvShape{convShapes[0], vecShapes[0], vecShapes[1], vecShapes[4]} {
				checkConvPassesOf(t, d, s, kcheck.Reduction, gpu.F16)
			}
		})
	}
}
