package layers

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bt-org/bt/gpu"
)

// Linear is a fully connected layer, out = in·Wᵀ + b, with PyTorch's weight
// layout [Out, In] so that state dicts move between the two unchanged.
type Linear struct {
	In, Out int
	Weight  *Param // [Out, In]
	Bias    *Param // [Out], or nil
}

// NewLinear returns a layer initialised as PyTorch's nn.Linear: weights and
// bias from U(−1/√In, 1/√In).
func NewLinear(d *gpu.Device, rng *rand.Rand, name string, in, out int, bias bool) (*Linear, error) {
	if in < 1 || out < 1 {
		return nil, fmt.Errorf("layers: %s: linear %d→%d has a size < 1", name, in, out)
	}
	l := &Linear{In: in, Out: out}
	bound := 1 / math.Sqrt(float64(in))
	var err error
	if l.Weight, err = newParam(d, name+".weight", uniform(rng, out*in, bound), out, in); err != nil {
		return nil, err
	}
	if bias {
		if l.Bias, err = newParam(d, name+".bias", uniform(rng, out, bound), out); err != nil {
			l.Release()
			return nil, err
		}
	}
	return l, nil
}

// Forward writes out = in·Wᵀ + b.
// out [n, Out], in [n, In].
func (l *Linear) Forward(r *gpu.Recorder, out, in *gpu.Tensor, n int) error {
	if err := gpu.Gemm(r, out, in, l.Weight.Value, gpu.GemmOp{M: n, N: l.Out, K: l.In, TransB: true, Alpha: 1}); err != nil {
		return err
	}
	if l.Bias == nil {
		return nil
	}
	return gpu.AddBias(r, out, l.Bias.Value, 1, l.Out)
}

// Backward accumulates dW += dOutᵀ·in and db += Σ dOut, and writes
// dIn = dOut·W unless dIn is nil.
// dIn [n, In], dOut [n, Out], in [n, In].
func (l *Linear) Backward(r *gpu.Recorder, dIn, dOut, in *gpu.Tensor, n int) error {
	if l.Bias != nil {
		if err := gpu.AccumulateSum(r, l.Bias.Grad, dOut, n, l.Out, 1); err != nil {
			return err
		}
	}
	if err := gpu.Gemm(r, l.Weight.Grad, dOut, in, gpu.GemmOp{M: l.Out, N: l.In, K: n, TransA: true, Alpha: 1, Beta: 1}); err != nil {
		return err
	}
	if dIn == nil {
		return nil
	}
	return gpu.Gemm(r, dIn, dOut, l.Weight.Value, gpu.GemmOp{M: n, N: l.In, K: l.Out, Alpha: 1})
}

// Params lists the trainable parameters.
func (l *Linear) Params() []*Param {
	if l.Bias == nil {
		return []*Param{l.Weight}
	}
	return []*Param{l.Weight, l.Bias}
}

// Release frees the parameters.
func (l *Linear) Release() {
	l.Weight.Release()
	l.Bias.Release()
}
