package layers

import (
	"fmt"
	"math"

	"github.com/bt-org/bt/gpu"
)

// FoldBatchNorm returns a new convolution, with a bias, that computes on
// its own what c followed by b in evaluation mode computes:
//
//	γ·(conv(x) + c.bias − μ)/√(σ² + ε) + β = conv'(x) + bias',
//
// with conv' having c's weights scaled by s = γ/√(σ² + ε) per output
// channel and bias' = β + (c.bias − μ)·s, worked out in float64 from b's
// running statistics and parameters as they are now. It is for inference:
// the copy has its own parameters, which training c and b does not change.
// b's ReLU, if set, is the caller's to apply after the copy (as
// gpu.ConvForwardBias does in the same pass). The caller releases the copy.
func FoldBatchNorm(c *Conv2D, b *BatchNorm) (*Conv2D, error) {
	if c.Cout != b.C {
		return nil, fmt.Errorf("layers: folding BatchNorm %s (%d channels) into a convolution with %d outputs", b.name, b.C, c.Cout)
	}
	get := func(t *gpu.Tensor, def float32) ([]float32, error) {
		if t == nil {
			return constant(b.C, def), nil
		}
		return t.Download()
	}
	w, err := c.Weight.Value.Download()
	if err != nil {
		return nil, err
	}
	var cb, gamma, beta []float32
	if c.Bias != nil {
		cb, err = c.Bias.Value.Download()
	} else {
		cb = constant(b.C, 0)
	}
	var g, be *gpu.Tensor
	if b.Affine() {
		g, be = b.Gamma.Value, b.Beta.Value
	}
	if err == nil {
		gamma, err = get(g, 1)
	}
	if err == nil {
		beta, err = get(be, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("layers: folding BatchNorm %s: %w", b.name, err)
	}
	mean, err := b.RunningMean.Download()
	if err != nil {
		return nil, fmt.Errorf("layers: folding BatchNorm %s: %w", b.name, err)
	}
	variance, err := b.RunningVar.Download()
	if err != nil {
		return nil, fmt.Errorf("layers: folding BatchNorm %s: %w", b.name, err)
	}
	per := len(w) / c.Cout
	fw, bias := make([]float32, len(w)), make([]float32, c.Cout)
	for o := range c.Cout {
		s := float64(gamma[o]) / math.Sqrt(float64(variance[o])+float64(b.Eps))
		for i := o * per; i < (o+1)*per; i++ {
			fw[i] = float32(float64(w[i]) * s)
		}
		bias[o] = float32(float64(beta[o]) + (float64(cb[o])-float64(mean[o]))*s)
	}
	f := &Conv2D{Cin: c.Cin, Cout: c.Cout, K: c.K, Stride: c.Stride, Pad: c.Pad}
	if f.Weight, err = newParam(b.d, c.Weight.Name, fw, c.Weight.Value.Shape...); err != nil {
		return nil, err
	}
	if f.Bias, err = newParam(b.d, b.name+".folded_bias", bias, c.Cout); err != nil {
		f.Release()
		return nil, err
	}
	return f, nil
}
