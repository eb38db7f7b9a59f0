package bench

import (
	"fmt"
	"time"

	"github.com/bt-org/bt/gpu"
)

// ConvCase is one benchmarked convolution layer.
type ConvCase struct {
	Name  string
	Shape gpu.ConvShape
}

// Bytes is one pass's minimal traffic: the input, the weights and the
// output (or their gradients) in f32, each read or written once.
func (c ConvCase) Bytes() float64 {
	s := c.Shape
	oh, ow := s.Out()
	return 4 * float64(s.N*s.Cin*s.H*s.W+s.Cout*s.Cin*s.KH*s.KW+s.N*s.Cout*oh*ow)
}

// ConvCases are representative layers of ResNet-50 at batch 32, 224 px, of
// a CIFAR ResNet-18 at batch 256, 32 px, and of the tiny ResNet of the demo
// (one view of a batch of 256, 28 px).
var ConvCases = []ConvCase{
	{"r50-stem-7x7s2", gpu.ConvShape{N: 32, Cin: 3, H: 224, W: 224, Cout: 64, KH: 7, KW: 7, Stride: 2, Pad: 3}},
	{"r50-l1-1x1-256to64", gpu.ConvShape{N: 32, Cin: 256, H: 56, W: 56, Cout: 64, KH: 1, KW: 1, Stride: 1}},
	{"r50-l1-3x3-64", gpu.ConvShape{N: 32, Cin: 64, H: 56, W: 56, Cout: 64, KH: 3, KW: 3, Stride: 1, Pad: 1}},
	{"r50-l2-3x3-128s2", gpu.ConvShape{N: 32, Cin: 128, H: 56, W: 56, Cout: 128, KH: 3, KW: 3, Stride: 2, Pad: 1}},
	{"r50-l3-3x3-256", gpu.ConvShape{N: 32, Cin: 256, H: 14, W: 14, Cout: 256, KH: 3, KW: 3, Stride: 1, Pad: 1}},
	{"r50-l4-3x3-512", gpu.ConvShape{N: 32, Cin: 512, H: 7, W: 7, Cout: 512, KH: 3, KW: 3, Stride: 1, Pad: 1}},
	{"r18c-l1-3x3-64", gpu.ConvShape{N: 256, Cin: 64, H: 32, W: 32, Cout: 64, KH: 3, KW: 3, Stride: 1, Pad: 1}},
	{"r18c-l4-3x3-512", gpu.ConvShape{N: 256, Cin: 512, H: 4, W: 4, Cout: 512, KH: 3, KW: 3, Stride: 1, Pad: 1}},
	{"tiny-stem-3x3-1to16", gpu.ConvShape{N: 256, Cin: 1, H: 28, W: 28, Cout: 16, KH: 3, KW: 3, Stride: 1, Pad: 1}},
	{"tiny-l1-3x3-16", gpu.ConvShape{N: 256, Cin: 16, H: 28, W: 28, Cout: 16, KH: 3, KW: 3, Stride: 1, Pad: 1}},
	{"tiny-l2-3x3-16to32s2", gpu.ConvShape{N: 256, Cin: 16, H: 28, W: 28, Cout: 32, KH: 3, KW: 3, Stride: 2, Pad: 1}},
	{"tiny-l2-1x1-16to32s2", gpu.ConvShape{N: 256, Cin: 16, H: 28, W: 28, Cout: 32, KH: 1, KW: 1, Stride: 2}},
	{"tiny-l2-3x3-32", gpu.ConvShape{N: 256, Cin: 32, H: 14, W: 14, Cout: 32, KH: 3, KW: 3, Stride: 1, Pad: 1}},
	{"tiny-l3-3x3-64", gpu.ConvShape{N: 256, Cin: 64, H: 7, W: 7, Cout: 64, KH: 3, KW: 3, Stride: 1, Pad: 1}},
}

// Flops is the multiply-add count of the forward pass, times two; the data
// and weight gradients each cost the same.
func (c ConvCase) Flops() float64 {
	oh, ow := c.Shape.Out()
	s := c.Shape
	return 2 * float64(s.N) * float64(s.Cout) * float64(oh*ow) * float64(s.Cin*s.KH*s.KW)
}

// ConvResult is the GFLOP/s of a layer's three passes.
type ConvResult struct {
	Case                  ConvCase
	Forward, Data, Weight float64
}

func (r ConvResult) String() string {
	return fmt.Sprintf("%-22s forward %7.1f   data-grad %7.1f   weight-grad %7.1f GFLOP/s", r.Case.Name, r.Forward, r.Data, r.Weight)
}

// MeasureConv times the forward pass and both gradients of c on d, each for
// at least min.
func MeasureConv(d *gpu.Device, c ConvCase, min time.Duration) (ConvResult, error) {
	s := c.Shape
	oh, ow := s.Out()
	var ts []*gpu.Tensor
	defer func() {
		for _, t := range ts {
			t.Release()
		}
	}()
	alloc := func(shape ...int) (*gpu.Tensor, error) {
		t, err := d.NewTensor(shape...)
		if err == nil {
			ts = append(ts, t)
			err = d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, t, 0.5) })
		}
		return t, err
	}
	x, err := alloc(s.N, s.Cin, s.H, s.W)
	if err != nil {
		return ConvResult{}, err
	}
	w, err := alloc(s.Cout, s.Cin, s.KH, s.KW)
	if err != nil {
		return ConvResult{}, err
	}
	y, err := alloc(s.N, s.Cout, oh, ow)
	if err != nil {
		return ConvResult{}, err
	}
	res := ConvResult{Case: c}
	for _, pass := range []struct {
		out *float64
		rec func(r *gpu.Recorder) error
	}{
		{&res.Forward, func(r *gpu.Recorder) error { return gpu.ConvForward(r, y, x, w, s) }},
		{&res.Data, func(r *gpu.Recorder) error { return gpu.ConvBackwardData(r, x, y, w, s) }},
		{&res.Weight, func(r *gpu.Recorder) error { return gpu.ConvBackwardWeight(r, w, y, x, s) }},
	} {
		sec, err := Time(min, func() error {
			err := d.Run(pass.rec)
			d.Sync()
			return err
		})
		if err != nil {
			return ConvResult{}, err
		}
		*pass.out = c.Flops() / sec / 1e9
	}
	return res, nil
}
