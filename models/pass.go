// Package models builds the networks Barlow Twins trains: ResNet backbones
// in torchvision's layout and the projector, each with a forward and a
// backward pass over a Pass that keeps the activations in between.
package models

import (
	"github.com/bt-org/bt/gpu"
)

// Pass keeps what one forward pass of a network leaves for its backward:
// activations and BatchNorm statistics, in tensors from the device's pool.
// Each Barlow Twins view has its own Pass, so BatchNorm statistics are per
// view. Release returns the tensors to the pool; the next step's forward
// takes the same sizes back, so a training step allocates nothing after the
// first.
type Pass struct {
	d     *gpu.Device
	train bool
	dtype gpu.DType // the activations' and their gradients' element type
	kept  []*gpu.Tensor

	resnet *resnetActs
	proj   *projActs
}

// NewPass starts a pass on d; train keeps activations for Backward, and an
// evaluation pass (train false) lets every activation go as soon as the next
// layer has read it.
func NewPass(d *gpu.Device, train bool) *Pass { return NewPassOf(d, train, gpu.F32) }

// NewPassOf is NewPass with the activations and their gradients stored as
// t: gpu.F16 is mixed precision, where the layers still compute in f32 and
// keep their parameters, gradients and statistics in f32. The network's
// inputs and outputs (images, representations, embeddings) are the
// caller's tensors, of their own types.
func NewPassOf(d *gpu.Device, train bool, t gpu.DType) *Pass {
	return &Pass{d: d, train: train, dtype: t}
}

// Train reports whether the pass keeps activations for a backward pass.
func (p *Pass) Train() bool { return p.train }

// keep allocates a tensor of type dt that lives until Release.
func (p *Pass) keep(dt gpu.DType, shape ...int) (*gpu.Tensor, error) {
	t, err := p.d.NewTensorOf(dt, shape...)
	if err != nil {
		return nil, err
	}
	p.kept = append(p.kept, t)
	return t, nil
}

// act allocates an activation: kept in a training pass; in an evaluation
// pass the caller gives it back with drop once the next layer is recorded.
func (p *Pass) act(shape ...int) (*gpu.Tensor, error) { return p.actOf(p.dtype, shape...) }

// actOf is act for a tensor of type dt, such as max pooling's f32 choices.
func (p *Pass) actOf(dt gpu.DType, shape ...int) (*gpu.Tensor, error) {
	if p.train {
		return p.keep(dt, shape...)
	}
	return p.d.NewTensorOf(dt, shape...)
}

// drop releases an evaluation pass's activation after its last reader has
// been recorded. Work recorded later that reuses the memory runs after that
// reader, so this is safe before submission.
func (p *Pass) drop(t *gpu.Tensor) {
	if !p.train {
		t.Release()
	}
}

// temp allocates a scratch tensor for the caller to Release after
// recording its last use.
func (p *Pass) temp(shape ...int) (*gpu.Tensor, error) { return p.d.NewTensorOf(p.dtype, shape...) }

// Release returns every kept tensor to the pool.
func (p *Pass) Release() {
	for _, t := range p.kept {
		t.Release()
	}
	p.kept = p.kept[:0]
}
