// Package layers holds the layers a ResNet and the Barlow Twins projector
// are made of, each as a forward and a backward pass recorded into a
// gpu.Recorder.
//
// Conventions, as in llm.c's train_gpt2.c:
//   - A layer is a struct holding its parameters and their gradients on the
//     device; Forward and Backward are methods taking outputs first, then
//     inputs, then sizes. The shape of every buffer is in a comment.
//   - Backward is Forward in reverse. Activation gradients are written (=);
//     parameter gradients accumulate (+=), so that the two Barlow Twins
//     branches, which share weights, add their gradients into the same
//     tensors. ZeroGrad clears them before a step.
//   - Layout is NCHW throughout: it is PyTorch's, so weights and fixtures
//     move between bt and PyTorch without transposes, and with implicit-GEMM
//     convolutions the contiguous spatial index is the GEMM's N dimension,
//     which neighbouring threads read and write.
//   - Forward keeps what Backward needs in tensors the caller passes in
//     (for example batch statistics), nothing more; an evaluation forward
//     keeps nothing.
package layers

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bt-org/bt/gpu"
)

// Param is a trainable tensor with its gradient. Vector parameters (biases
// and BatchNorm's γ and β) are excluded from LARS's weight decay and trust
// ratio, as in the official code.
type Param struct {
	Name  string
	Value *gpu.Tensor
	Grad  *gpu.Tensor
}

// IsVector reports whether the parameter is one-dimensional.
func (p *Param) IsVector() bool { return len(p.Value.Shape) == 1 }

// newParam allocates a parameter initialised with init and a zeroed gradient.
func newParam(d *gpu.Device, name string, init []float32, shape ...int) (*Param, error) {
	v, err := d.FromSlice(init, shape...)
	if err != nil {
		return nil, fmt.Errorf("layers: %s: %w", name, err)
	}
	g, err := d.FromSlice(make([]float32, len(init)), shape...)
	if err != nil {
		v.Release()
		return nil, fmt.Errorf("layers: %s: %w", name, err)
	}
	return &Param{Name: name, Value: v, Grad: g}, nil
}

// Release frees the parameter and its gradient.
func (p *Param) Release() {
	if p == nil {
		return
	}
	p.Value.Release()
	p.Grad.Release()
}

// ZeroGrad records the clearing of every parameter's gradient.
func ZeroGrad(r *gpu.Recorder, ps []*Param) error {
	for _, p := range ps {
		if err := gpu.Fill(r, p.Grad, 0); err != nil {
			return err
		}
	}
	return nil
}

// kaimingNormalFanOut draws n weights from N(0, 2/fanOut), torchvision's
// initialisation of ResNet convolutions (mode fan_out, ReLU gain).
func kaimingNormalFanOut(rng *rand.Rand, n, fanOut int) []float32 {
	std := math.Sqrt(2 / float64(fanOut))
	w := make([]float32, n)
	for i := range w {
		w[i] = float32(rng.NormFloat64() * std)
	}
	return w
}

// uniform draws n values from U(−bound, bound): PyTorch's default Linear
// initialisation uses bound 1/√fanIn for weights and biases alike.
func uniform(rng *rand.Rand, n int, bound float64) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = float32((2*rng.Float64() - 1) * bound)
	}
	return w
}

func constant(n int, v float32) []float32 {
	w := make([]float32, n)
	for i := range w {
		w[i] = v
	}
	return w
}
