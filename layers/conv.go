package layers

import (
	"fmt"
	"math/rand/v2"

	"github.com/bt-org/bt/gpu"
)

// Conv2D is a 2-D convolution over NCHW batches, run as an implicit GEMM:
// the im2col matrix is gathered tile by tile inside the GEMM kernel instead
// of being written out, which would cost KH·KW times the input's memory
// (9× for a 3×3 layer) and a round trip through it.
type Conv2D struct {
	Cin, Cout, K, Stride, Pad int
	Weight                    *Param // [Cout, Cin, K, K]
	Bias                      *Param // [Cout], or nil
}

// NewConv2D returns a K×K convolution initialised as torchvision's ResNets
// are: Kaiming normal with fan_out and the ReLU gain; a bias, if any, starts
// at zero.
func NewConv2D(d *gpu.Device, rng *rand.Rand, name string, cin, cout, k, stride, pad int, bias bool) (*Conv2D, error) {
	if cin < 1 || cout < 1 || k < 1 || stride < 1 || pad < 0 {
		return nil, fmt.Errorf("layers: %s: conv %d→%d k%d s%d p%d has a size < 1", name, cin, cout, k, stride, pad)
	}
	c := &Conv2D{Cin: cin, Cout: cout, K: k, Stride: stride, Pad: pad}
	var err error
	c.Weight, err = newParam(d, name+".weight", kaimingNormalFanOut(rng, cout*cin*k*k, cout*k*k), cout, cin, k, k)
	if err != nil {
		return nil, err
	}
	if bias {
		if c.Bias, err = newParam(d, name+".bias", make([]float32, cout), cout); err != nil {
			c.Release()
			return nil, err
		}
	}
	return c, nil
}

// Shape is the convolution over a batch of n images of h×w pixels.
func (c *Conv2D) Shape(n, h, w int) gpu.ConvShape {
	return gpu.ConvShape{N: n, Cin: c.Cin, H: h, W: w, Cout: c.Cout, KH: c.K, KW: c.K, Stride: c.Stride, Pad: c.Pad}
}

// OutSize is the output height and width for an h×w input.
func (c *Conv2D) OutSize(h, w int) (int, int) { return c.Shape(1, h, w).Out() }

// Forward writes out = conv(in) + bias, the bias added in the
// convolution's own store.
// out [n, Cout, OH, OW], in [n, Cin, h, w].
func (c *Conv2D) Forward(r *gpu.Recorder, out, in *gpu.Tensor, n, h, w int) error {
	return c.forward(r, out, in, n, h, w, false)
}

// ForwardReLU writes out = max(conv(in) + bias, 0) in one pass: a
// convolution with a BatchNorm and its ReLU folded in (FoldBatchNorm), for
// inference. It needs the bias.
func (c *Conv2D) ForwardReLU(r *gpu.Recorder, out, in *gpu.Tensor, n, h, w int) error {
	if c.Bias == nil {
		return fmt.Errorf("layers: %s: a fused ReLU needs the convolution's bias", c.Weight.Name)
	}
	return c.forward(r, out, in, n, h, w, true)
}

func (c *Conv2D) forward(r *gpu.Recorder, out, in *gpu.Tensor, n, h, w int, relu bool) error {
	s := c.Shape(n, h, w)
	if c.Bias == nil {
		return gpu.ConvForward(r, out, in, c.Weight.Value, s)
	}
	return gpu.ConvForwardBias(r, out, in, c.Weight.Value, c.Bias.Value, relu, s)
}

// Backward accumulates the weight and bias gradients and writes dIn, unless
// dIn is nil (the first layer of a network needs no input gradient).
// dIn [n, Cin, h, w], dOut [n, Cout, OH, OW], in [n, Cin, h, w].
func (c *Conv2D) Backward(r *gpu.Recorder, dIn, dOut, in *gpu.Tensor, n, h, w int) error {
	s := c.Shape(n, h, w)
	if c.Bias != nil {
		oh, ow := s.Out()
		if err := gpu.AccumulateSum(r, c.Bias.Grad, dOut, n, c.Cout, oh*ow); err != nil {
			return err
		}
	}
	if err := gpu.ConvBackwardWeight(r, c.Weight.Grad, dOut, in, s); err != nil {
		return err
	}
	if dIn == nil {
		return nil
	}
	return gpu.ConvBackwardData(r, dIn, dOut, c.Weight.Value, s)
}

// Params lists the trainable parameters.
func (c *Conv2D) Params() []*Param {
	if c.Bias == nil {
		return []*Param{c.Weight}
	}
	return []*Param{c.Weight, c.Bias}
}

// Release frees the parameters.
func (c *Conv2D) Release() {
	c.Weight.Release()
	c.Bias.Release()
}
