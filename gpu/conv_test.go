package gpu_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
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
}

func refShape(s gpu.ConvShape) ref.ConvShape {
	return ref.ConvShape{N: s.N, Cin: s.Cin, H: s.H, W: s.W, Cout: s.Cout, KH: s.KH, KW: s.KW, Stride: s.Stride, Pad: s.Pad}
}

func TestConv(t *testing.T) {
	d := gputest.Device(t)
	for _, s := range convShapes {
		oh, ow := s.Out()
		xs := []int{s.N, s.Cin, s.H, s.W}
		ws := []int{s.Cout, s.Cin, s.KH, s.KW}
		ys := []int{s.N, s.Cout, oh, ow}
		rs := refShape(s)
		name := fmt.Sprintf("%dx%dx%dx%d-%dk%ds%dp%d", s.N, s.Cin, s.H, s.W, s.Cout, s.KH, s.Stride, s.Pad)
		t.Run("forward/"+name, func(t *testing.T) {
			gputest.Check(t, d, kcheck.Op{Inputs: [][]int{xs, ws}, Outputs: [][]int{ys}, Tol: kcheck.Reduction,
				GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ConvForward(r, o[0], i[0], i[1], s) },
				Ref: func(o, i [][]float64) { copy(o[0], ref.ConvForward(rs, i[0], i[1], nil)) },
			})
		})
		t.Run("data/"+name, func(t *testing.T) {
			gputest.Check(t, d, kcheck.Op{Inputs: [][]int{ys, ws, xs}, Outputs: [][]int{xs}, Tol: kcheck.Reduction,
				GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ConvBackwardData(r, o[0], i[0], i[1], s) },
				Ref: func(o, i [][]float64) {
					dx, _, _ := ref.ConvBackward(rs, i[2], i[1], nil, i[0])
					copy(o[0], dx)
				},
			})
		})
		t.Run("weight/"+name, func(t *testing.T) {
			gputest.Check(t, d, kcheck.Op{Inputs: [][]int{ys, xs}, Outputs: [][]int{ws}, Accumulate: []bool{true}, Tol: kcheck.Reduction,
				GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ConvBackwardWeight(r, o[0], i[0], i[1], s) },
				Ref: func(o, i [][]float64) {
					_, dw, _ := ref.ConvBackward(rs, i[1], make([]float64, len(o[0])), nil, i[0])
					for j := range dw {
						o[0][j] += dw[j]
					}
				},
			})
		})
	}
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
}
