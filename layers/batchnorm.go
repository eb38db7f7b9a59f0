package layers

import (
	"fmt"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/shaders"
)

// BatchNorm is PyTorch's BatchNorm2d and BatchNorm1d in one: its input is
// viewed as [N, C, HW], an NCHW tensor with HW = H·W or an [N, C] matrix with
// HW = 1, and each of the C channels is normalised over N and HW.
//
// In training mode it uses the batch's mean and biased variance, and moves
// the running statistics towards the batch mean and the unbiased batch
// variance by Momentum; in evaluation mode it uses the running statistics.
// Without affine parameters (Barlow Twins' normalisation of the embeddings
// before the cross-correlation) Gamma and Beta are nil.
type BatchNorm struct {
	C             int
	Eps, Momentum float32
	Gamma, Beta   *Param      // [C] each: the scale γ (starts at 1) and the shift β (at 0); nil without affine
	RunningMean   *gpu.Tensor // [C], starts at 0
	RunningVar    *gpu.Tensor // [C], starts at 1
	d             *gpu.Device
	name          string
	params        []*Param
}

// NewBatchNorm returns a BatchNorm over c channels with PyTorch's defaults:
// eps 1e-5, momentum 0.1, γ = 1, β = 0, running mean 0 and variance 1. Its
// parameters are named name.weight and name.bias, as in a PyTorch state
// dict.
func NewBatchNorm(d *gpu.Device, name string, c int, affine bool) (*BatchNorm, error) {
	if c < 1 {
		return nil, fmt.Errorf("layers: BatchNorm %s: %d channels; need at least 1", name, c)
	}
	b := &BatchNorm{C: c, Eps: 1e-5, Momentum: 0.1, d: d, name: name}
	var err error
	if b.RunningMean, err = d.FromSlice(constant(c, 0), c); err != nil {
		return nil, fmt.Errorf("layers: BatchNorm %s: %w", name, err)
	}
	if b.RunningVar, err = d.FromSlice(constant(c, 1), c); err != nil {
		b.Release()
		return nil, fmt.Errorf("layers: BatchNorm %s: %w", name, err)
	}
	if affine {
		if b.Gamma, err = newParam(d, name+".weight", constant(c, 1), c); err != nil {
			b.Release()
			return nil, err
		}
		if b.Beta, err = newParam(d, name+".bias", constant(c, 0), c); err != nil {
			b.Release()
			return nil, err
		}
		b.params = []*Param{b.Gamma, b.Beta}
	}
	return b, nil
}

// Name is the layer's name in a state dict: its parameters and running
// statistics are Name+".weight", ".bias", ".running_mean", ".running_var".
func (b *BatchNorm) Name() string { return b.name }

// Affine reports whether the layer has γ and β.
func (b *BatchNorm) Affine() bool { return b.Gamma != nil }

// Params returns γ and β, or nothing without affine parameters.
func (b *BatchNorm) Params() []*Param { return b.params }

// ZeroGamma sets γ to 0, torchvision's zero_init_residual for the last
// BatchNorm of each residual block (the official Barlow Twins backbone uses
// it), so that every block starts as the identity.
func (b *BatchNorm) ZeroGamma() error {
	if b.Gamma == nil {
		return fmt.Errorf("layers: BatchNorm %s has no γ to zero", b.name)
	}
	return b.Gamma.Value.Upload(constant(b.C, 0))
}

// NewCache allocates the [3, C] tensor a training forward keeps for
// backward: per channel, the batch mean as x₀ + δ (row 0 holds x₀, the
// channel's first value in the batch, row 1 δ), and row 2 the inverse
// standard deviation 1/√(var+eps). Split in two, the mean keeps float32's
// precision relative to the data's spread rather than to its offset. The
// rows share one tensor so that the training kernel binds at most seven
// storage buffers, within WebGPU's default of eight.
func (b *BatchNorm) NewCache() (*gpu.Tensor, error) { return b.d.NewTensor(3, b.C) }

// Release frees the parameters and the running statistics.
func (b *BatchNorm) Release() {
	b.Gamma.Release()
	b.Beta.Release()
	b.RunningMean.Release()
	b.RunningVar.Release()
}

// bnWG is the number of threads in a BatchNorm workgroup.
const bnWG = 256

// blockX is how many channels a training or backward workgroup takes: with
// HW = 1 a channel's values are C apart, so 32 neighbouring channels share a
// workgroup and the loads coalesce across channels; otherwise one channel
// per workgroup, its threads reading along HW.
func blockX(hw int) int {
	if hw == 1 {
		return 32
	}
	return 1
}

// named is a tensor with the name an error message gives it.
type named struct {
	name string
	t    *gpu.Tensor
	n    int // the elements it must have
}

// prepare validates a pass's sizes and tensors and returns its kernel.
func (b *BatchNorm) prepare(mode string, n, hw int, ts ...named) (*gpu.Kernel, error) {
	if n < 1 || hw < 1 {
		return nil, fmt.Errorf("layers: BatchNorm %s %s: N=%d and HW=%d must be ≥ 1", b.name, mode, n, hw)
	}
	if err := checkSizes(fmt.Sprintf("BatchNorm %s %s (N=%d, C=%d, HW=%d)", b.name, mode, n, b.C, hw), ts); err != nil {
		return nil, err
	}
	if mode == "eval" {
		return b.d.Kernel("batchnorm", shaders.Spec{"Mode": mode, "Affine": b.Affine(), "WG": bnWG})
	}
	bx, v := blockX(hw), vecWidth(hw)
	t := "f32"
	if v == 4 {
		t = "vec4<f32>"
	}
	return b.d.Kernel("batchnorm", shaders.Spec{"Mode": mode, "Affine": b.Affine(), "BX": bx, "BY": bnWG / bx, "V": v, "T": t})
}

// vecWidth is how many neighbouring positions along HW a training or
// backward thread handles at once: 4 where HW allows vec4 access.
func vecWidth(hw int) int {
	if hw%4 == 0 {
		return 4
	}
	return 1
}

// Forward normalises in, [N, C, HW], into out, [N, C, HW]. With train set
// it uses the batch's statistics, writes them into cache, [3, C] (see
// NewCache), for Backward, and updates the running statistics; otherwise it
// uses the running statistics and cache may be nil. Training needs more
// than one value per channel (N·HW ≥ 2), as in PyTorch.
func (b *BatchNorm) Forward(r *gpu.Recorder, out, cache, in *gpu.Tensor, n, hw int, train bool) error {
	size := n * b.C * hw
	if !train {
		k, err := b.prepare("eval", n, hw, named{"out", out, size}, named{"in", in, size})
		if err != nil {
			return err
		}
		grid, err := spreadGrid(b.d, (size+bnWG-1)/bnWG)
		if err != nil {
			return err
		}
		return r.Dispatch(k, grid, b.uniforms(n, hw), b.with(out, in, b.RunningMean, b.RunningVar)...)
	}
	k, err := b.prepare("train", n, hw, named{"out", out, size}, named{"cache", cache, 3 * b.C}, named{"in", in, size})
	if err != nil {
		return err
	}
	if n*hw < 2 {
		return fmt.Errorf("layers: BatchNorm %s: training needs more than one value per channel; got N=%d, HW=%d", b.name, n, hw)
	}
	grid, err := spreadGrid(b.d, (b.C+blockX(hw)-1)/blockX(hw))
	if err != nil {
		return err
	}
	return r.Dispatch(k, grid, b.uniforms(n, hw/vecWidth(hw)), b.with(out, cache, b.RunningMean, b.RunningVar, in)...)
}

// Backward writes dIn, [N, C, HW], and accumulates dγ and dβ from dOut,
// [N, C, HW], given the training forward's input in and its cache, [3, C].
// Evaluation-mode BatchNorm has no backward: bt trains in training mode
// only and freezes the backbone for linear evaluation.
func (b *BatchNorm) Backward(r *gpu.Recorder, dIn, dOut, in, cache *gpu.Tensor, n, hw int) error {
	size := n * b.C * hw
	k, err := b.prepare("backward", n, hw, named{"dIn", dIn, size}, named{"dOut", dOut, size},
		named{"in", in, size}, named{"cache", cache, 3 * b.C})
	if err != nil {
		return err
	}
	grid, err := spreadGrid(b.d, (b.C+blockX(hw)-1)/blockX(hw))
	if err != nil {
		return err
	}
	u := b.uniforms(n, hw/vecWidth(hw))
	if !b.Affine() {
		return r.Dispatch(k, grid, u, dIn, dOut, in, cache)
	}
	return r.Dispatch(k, grid, u, dIn, b.Gamma.Grad, b.Beta.Grad, dOut, in, cache, b.Gamma.Value)
}

func (b *BatchNorm) uniforms(n, hw int) gpu.Params {
	return gpu.Params{}.U(n).U(b.C).U(hw).F(b.Eps).F(b.Momentum)
}

// with appends γ and β to a dispatch's buffers when the layer has them.
func (b *BatchNorm) with(ts ...*gpu.Tensor) []*gpu.Tensor {
	if b.Affine() {
		return append(ts, b.Gamma.Value, b.Beta.Value)
	}
	return ts
}

// spreadGrid lays out groups workgroups over x and y, as gpu's 1-D grids
// do, when they exceed the adapter's limit per dimension; kernels rebuild
// the flat workgroup index as wid.x + wid.y·nwg.x.
func spreadGrid(d *gpu.Device, groups int) ([3]int, error) {
	maxWG := int(d.Limits.MaxComputeWorkgroupsPerDimension)
	x := min(groups, maxWG)
	y := (groups + x - 1) / x
	if y > maxWG {
		return [3]int{}, fmt.Errorf("layers: %d workgroups exceed %d×%d", groups, maxWG, maxWG)
	}
	return [3]int{x, y, 1}, nil
}
