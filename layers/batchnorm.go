package layers

import (
	"fmt"
	"slices"

	"github.com/bt-org/bt/dist"
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
//
// With ReLU set, the ReLU that follows BatchNorm in a ResNet or a projector
// runs inside its passes: Forward writes max(y, 0), and Backward takes the
// gradient of that output. This saves a pass over the activations each way.
type BatchNorm struct {
	C             int
	Eps, Momentum float32
	ReLU          bool
	Gamma, Beta   *Param      // [C] each: the scale γ (starts at 1) and the shift β (at 0); nil without affine
	RunningMean   *gpu.Tensor // [C], starts at 0
	RunningVar    *gpu.Tensor // [C], starts at 1
	// Sync, a group of processes, makes training use the statistics of
	// every rank's batch together and the backward pass the sums over them
	// (PyTorch's SyncBatchNorm): the layer then computes what it would over
	// the ranks' batches concatenated, with a host round trip in each pass.
	// nil: this batch's statistics, in one pass each way.
	Sync   dist.Comm
	d      *gpu.Device
	name   string
	params []*Param
	layout BatchNormLayout
}

// BatchNormLayout is how BatchNorm's training and backward passes lay a
// channel's work out on the device.
type BatchNormLayout int

const (
	// LayoutAuto is the adapter's: serial chunks (batchnorm_serial.wgsl)
	// on CPU adapters where they fit, workgroups elsewhere (see serial).
	LayoutAuto BatchNormLayout = iota
	// LayoutWorkgroup is the workgroups (batchnorm.wgsl) that GPUs get, on
	// any adapter.
	LayoutWorkgroup
)

func (l BatchNormLayout) String() string {
	switch l {
	case LayoutAuto:
		return "auto"
	case LayoutWorkgroup:
		return "workgroup"
	}
	return fmt.Sprintf("BatchNormLayout(%d)", int(l))
}

// BatchNormOption sets a choice of NewBatchNorm's.
type BatchNormOption func(*BatchNorm) error

// WithLayout makes the layer lay its passes out as l.
func WithLayout(l BatchNormLayout) BatchNormOption {
	return func(b *BatchNorm) error {
		if l != LayoutAuto && l != LayoutWorkgroup {
			return fmt.Errorf("unknown layout %v", l)
		}
		b.layout = l
		return nil
	}
}

// NewBatchNorm returns a BatchNorm over c channels with PyTorch's defaults:
// eps 1e-5, momentum 0.1, γ = 1, β = 0, running mean 0 and variance 1. Its
// parameters are named name.weight and name.bias, as in a PyTorch state
// dict. Options choose what the adapter's defaults would otherwise.
func NewBatchNorm(d *gpu.Device, name string, c int, affine bool, opts ...BatchNormOption) (*BatchNorm, error) {
	if c < 1 {
		return nil, fmt.Errorf("layers: BatchNorm %s: %d channels; need at least 1", name, c)
	}
	b := &BatchNorm{C: c, Eps: 1e-5, Momentum: 0.1, d: d, name: name}
	for _, o := range opts {
		if err := o(b); err != nil {
			return nil, fmt.Errorf("layers: BatchNorm %s: %w", name, err)
		}
	}
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

// serialSteps bounds the loop iterations of each loop of a serial chunk, so
// that a pass (at most two such loops and the merge) stays within
// gpu.MaxLoopSteps.
const serialSteps = gpu.MaxLoopSteps / 4

// serialChunks is how the serial layout (shaders/batchnorm_serial.wgsl)
// splits each channel: chunks of rows images, each row of hw values costing
// at most hw/4 + 10 loop steps (gallivm also counts each loop's last, failing
// test). ok is false where a single row or the merge over the chunks would
// not fit the loop limit.
func serialChunks(n, hw int) (rows, chunks int, ok bool) {
	perRow := hw/4 + 10
	rows = max(1, serialSteps/perRow)
	chunks = (n + rows - 1) / rows
	return rows, chunks, perRow <= serialSteps && chunks <= serialSteps
}

// serial reports whether training and backward run in the serial layout:
// on CPU adapters, where it measured 2.5–6× faster than workgroups of 256
// threads on lavapipe at the tiny ResNet's shapes (its loads are uniform).
// GPUs get workgroups (shaders/batchnorm.wgsl), and so does BatchNorm1d
// (HW = 1) on CPU adapters wherever the workgroup layout's three loops of
// N/8 steps fit gpu.MaxLoopSteps (N up to about 87,000): its workgroups
// read 32 neighbouring channels of a row together, 3.9–4.4 ms against the
// serial layout's 25.3 ms for the projector's [256, 512] on lavapipe
// (BENCHMARKS.md).
func (b *BatchNorm) serial(n, hw int) bool {
	if bx, _ := layout(hw); hw == 1 && 3*n/(bnWG/bx)+64 <= gpu.MaxLoopSteps {
		return false
	}
	_, _, ok := serialChunks(n, hw)
	// The serial backward binds 9 storage buffers with γ, β and a fused
	// ReLU, one more than WebGPU's default limit.
	return ok && b.d.IsCPU() && b.layout == LayoutAuto && b.d.Limits.MaxStorageBuffersPerShaderStage >= 9
}

// variant is how a training or backward pass lays its work out: the
// tuned variant for its class where it can run at these sizes, else the
// built-in one (serial or layout's). A layer made WithLayout(LayoutWorkgroup)
// never takes the serial layout.
func (b *BatchNorm) variant(mode shaders.BNMode, n, hw int) gpu.KernelVariant {
	c := b.kernelCase(mode, n, hw)
	v := b.d.Variant(c)
	if !b.runs(v, n, hw) || v.Serial && b.layout == LayoutWorkgroup {
		return c.Builtin
	}
	return v
}

// kernelCase is a pass's dispatch as tuning sees it.
func (b *BatchNorm) kernelCase(mode shaders.BNMode, n, hw int) gpu.KernelCase {
	fam := gpu.FamilyBatchNorm
	if mode == shaders.BNBackward {
		fam = gpu.FamilyBatchNormBackward
	}
	builtin := gpu.KernelVariant{Serial: true}
	if !b.serial(n, hw) {
		bx, _ := layout(hw)
		builtin = gpu.KernelVariant{Columns: shaders.Columns{BX: bx, BY: bnWG / bx}}
	}
	return gpu.KernelCase{Class: gpu.KernelClassOf(fam, n, b.C, hw), Dims: [3]int{n, b.C, hw},
		Affine: b.Affine(), ReLU: b.ReLU, Builtin: builtin}
}

// runs reports whether variant v can run a pass over [n, C, hw] on this
// device: the serial layout where its chunks fit and the adapter binds
// its buffers, a workgroup layout where its threads' three loops over a
// channel fit a CPU adapter's loop limit.
func (b *BatchNorm) runs(v gpu.KernelVariant, n, hw int) bool {
	if v.Serial {
		_, _, ok := serialChunks(n, hw)
		return ok && b.d.Limits.MaxStorageBuffersPerShaderStage >= 9
	}
	_, vec := layout(hw)
	steps := (n*hw/vec + v.Columns.BY - 1) / v.Columns.BY
	return !b.d.IsCPU() || 3*steps+64 <= gpu.MaxLoopSteps
}

// BatchNormVariants is the layouts tuning tries for a BatchNorm pass of
// case c on d, c's built-in one first: on CPU adapters the serial layout;
// workgroups of 64 to 256 threads, 8 to 64 neighbouring channels each for
// BatchNorm1d (HW = 1, whose channels lie side by side), one or two
// channels each otherwise; those that can run at c's sizes.
func BatchNormVariants(d *gpu.Device, c gpu.KernelCase) []gpu.KernelVariant {
	n, ch, hw := c.Dims[0], c.Dims[1], c.Dims[2]
	b := &BatchNorm{C: ch, d: d}
	bxs := []int{1, 2}
	if hw == 1 {
		bxs = []int{8, 16, 32, 64}
	}
	vs := gpu.ColumnVariants(bxs...)
	if d.IsCPU() {
		vs = append([]gpu.KernelVariant{{Serial: true}}, vs...)
	}
	return d.Candidates(c.Class.Family, c.Builtin, vs, func(v gpu.KernelVariant) bool { return b.runs(v, n, hw) })
}

// cost is a pass's FLOPs and minimal traffic, whatever its layout: the
// training forward reads x once and writes y once (two sums, the
// normalisation, γ and β and the ReLU: 8 operations a value), the backward
// reads dy and x once and writes dx once (two sums and the gradient: 10
// operations a value); the per-channel statistics and parameters add
// 8 floats per channel.
func (b *BatchNorm) cost(mode shaders.BNMode, n, hw int, half bool) (flops, bytes float64) {
	size, elem := float64(n*b.C*hw), 4.0
	if half {
		elem = 2
	}
	flops, arrays := 8*size, 2.0
	if mode == shaders.BNBackward {
		flops, arrays = 10*size, 3
	}
	return flops, arrays*elem*size + 8*4*float64(b.C)
}

// layout is how the workgroup layout splits a channel's work: bx channels
// per workgroup, bnWG/bx threads each, reading v values at a time. With
// HW = 1 a channel's values are C apart, so 32 neighbouring channels share a
// workgroup and the loads coalesce across channels; otherwise one channel
// per workgroup, its threads reading along HW, as vec4 where HW allows.
func layout(hw int) (bx, v int) {
	bx, v = 1, 1
	if hw == 1 {
		bx = 32
	}
	if hw%4 == 0 {
		v = 4
	}
	return bx, v
}

// named is a tensor with the name an error message gives it.
type named struct {
	name string
	t    *gpu.Tensor
	n    int // the elements it must have
}

// check validates a pass's sizes and tensors.
func (b *BatchNorm) check(mode string, n, hw int, ts ...named) error {
	if n < 1 || hw < 1 {
		return fmt.Errorf("layers: BatchNorm %s %s: N=%d and HW=%d must be ≥ 1", b.name, mode, n, hw)
	}
	return checkSizes(fmt.Sprintf("BatchNorm %s %s (N=%d, C=%d, HW=%d)", b.name, mode, n, b.C, hw), ts)
}

// channelPass records a training or backward pass: mode's two serial
// dispatches, the first writing per-chunk partial results that the second
// merges, or one workgroup dispatch. Each binds its own buffers, so bind
// returns them for pass 1 or 2 given the partial results (nil for a
// workgroup dispatch, which is "pass 2" without partials).
func (b *BatchNorm) channelPass(r *gpu.Recorder, mode shaders.BNMode, n, hw int, bind func(pass int, partial *gpu.Tensor) []*gpu.Tensor) error {
	half := halfOf(bind(2, nil))
	variant := b.variant(mode, n, hw)
	if !variant.Serial {
		_, v := layout(hw)
		bx := variant.Columns.BX
		// Subgroups sum a channel's values where a workgroup holds one
		// channel (shaders/lib.tmpl's total).
		k, err := b.d.Kernel("batchnorm", shaders.BatchNorm{BNOp: b.op(mode, half), V: v,
			Columns: variant.Columns, Subgroups: b.d.Subgroups && bx == 1})
		if err != nil {
			return err
		}
		grid, err := spreadGrid(b.d, (b.C+bx-1)/bx)
		if err != nil {
			return err
		}
		return r.Dispatch(k, grid, b.uniforms(n, hw/v).Cost(b.cost(mode, n, hw, half)), bind(2, nil)...)
	}
	rows, chunks, _ := serialChunks(n, hw)
	partial, err := b.d.NewTensor(b.C*chunks, 2)
	if err != nil {
		return err
	}
	// Back to the pool at once: anything recorded later that reuses it
	// runs after pass 2, which reads it.
	defer partial.Release()
	grid, err := spreadGrid(b.d, b.C*chunks)
	if err != nil {
		return err
	}
	u := b.uniforms(n, hw).U(rows).U(chunks)
	for pass := 1; pass <= 2; pass++ {
		if pass == 2 {
			// The pass's work is stated once, on the dispatch that ends it.
			u = u.Cost(b.cost(mode, n, hw, half))
		}
		k, err := b.d.Kernel("batchnorm_serial", shaders.BatchNormSerial{BNOp: b.op(mode, half), Pass: pass})
		if err != nil {
			return err
		}
		if err := r.Dispatch(k, grid, u, bind(pass, partial)...); err != nil {
			return err
		}
	}
	return nil
}

// Forward normalises in, [N, C, HW], into out, [N, C, HW]. With train set
// it uses the batch's statistics, writes them into cache, [3, C] (see
// NewCache), for Backward, and updates the running statistics; otherwise it
// uses the running statistics and cache may be nil. Training needs more
// than one value per channel (N·HW ≥ 2), as in PyTorch.
func (b *BatchNorm) Forward(r *gpu.Recorder, out, cache, in *gpu.Tensor, n, hw int, train bool) error {
	size := n * b.C * hw
	if !train {
		if err := b.check("eval", n, hw, named{"out", out, size}, named{"in", in, size}); err != nil {
			return err
		}
		return b.normalise(r, out, in, b.RunningMean, b.RunningVar, n, hw)
	}
	if err := b.check("train", n, hw, named{"out", out, size}, named{"cache", cache, 3 * b.C}, named{"in", in, size}); err != nil {
		return err
	}
	if b.synced() {
		// Every rank has N: the statistics are over ranks·N·HW values.
		if b.Sync.Size()*n*hw < 2 {
			return fmt.Errorf("layers: BatchNorm %s: training needs more than one value per channel; got N=%d, HW=%d on %d ranks", b.name, n, hw, b.Sync.Size())
		}
		return b.syncForward(r, out, cache, in, n, hw)
	}
	if n*hw < 2 {
		return fmt.Errorf("layers: BatchNorm %s: training needs more than one value per channel; got N=%d, HW=%d", b.name, n, hw)
	}
	return b.channelPass(r, "train", n, hw, func(pass int, partial *gpu.Tensor) []*gpu.Tensor {
		switch {
		case pass == 1:
			return []*gpu.Tensor{partial, in}
		case partial == nil:
			return b.with(out, cache, b.RunningMean, b.RunningVar, in)
		}
		return b.with(out, cache, b.RunningMean, b.RunningVar, in, partial)
	})
}

// Backward writes dIn, [N, C, HW], and accumulates dγ and dβ from dOut,
// [N, C, HW], given the training forward's input in and its cache, [3, C].
// Evaluation-mode BatchNorm has no backward: bt trains in training mode
// only and freezes the backbone for linear evaluation.
func (b *BatchNorm) Backward(r *gpu.Recorder, dIn, dOut, in, cache *gpu.Tensor, n, hw int) error {
	size := n * b.C * hw
	if err := b.check("backward", n, hw, named{"dIn", dIn, size}, named{"dOut", dOut, size},
		named{"in", in, size}, named{"cache", cache, 3 * b.C}); err != nil {
		return err
	}
	if b.synced() {
		return b.syncBackward(r, dIn, dOut, in, cache, n, hw)
	}
	// Taking the gradient back through a fused ReLU needs γ and β, to work
	// out the output again.
	relu := b.ReLU && b.Affine()
	return b.channelPass(r, "backward", n, hw, func(pass int, partial *gpu.Tensor) []*gpu.Tensor {
		if pass == 1 {
			ts := []*gpu.Tensor{partial, dOut, in, cache}
			if relu {
				ts = append(ts, b.Gamma.Value, b.Beta.Value)
			}
			return ts
		}
		ts := []*gpu.Tensor{dIn}
		if b.Affine() {
			ts = append(ts, b.Gamma.Grad, b.Beta.Grad)
		}
		ts = append(ts, dOut, in, cache)
		if partial != nil {
			ts = append(ts, partial)
		}
		if b.Affine() {
			ts = append(ts, b.Gamma.Value)
		}
		if relu {
			ts = append(ts, b.Beta.Value)
		}
		return ts
	})
}

// normalise records y = γ·(x − mean)/√(var + eps) + β over in, [N, C, HW],
// into out with the given statistics, [C] each: the running ones in
// evaluation, the batch's over every rank in synchronised training.
func (b *BatchNorm) normalise(r *gpu.Recorder, out, in, mean, variance *gpu.Tensor, n, hw int) error {
	half := halfOf([]*gpu.Tensor{out, in})
	k, err := b.d.Kernel("batchnorm", shaders.BatchNorm{BNOp: b.op(shaders.BNEval, half), V: 1, Columns: shaders.Columns{BX: 1, BY: bnWG}})
	if err != nil {
		return err
	}
	grid, err := spreadGrid(b.d, (n*b.C*hw+bnWG-1)/bnWG)
	if err != nil {
		return err
	}
	return r.Dispatch(k, grid, b.uniforms(n, hw), b.with(out, in, mean, variance)...)
}

// op is what a pass computes.
func (b *BatchNorm) op(mode shaders.BNMode, half bool) shaders.BNOp {
	return shaders.BNOp{Mode: mode, Affine: b.Affine(), ReLU: b.ReLU, Half: half}
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

// halfOf reports whether a pass's data tensors are stored as f16 (mixed
// precision): the layer's own tensors, statistics and parameters, are
// always f32, so any f16 tensor among those bound is data.
func halfOf(ts []*gpu.Tensor) bool {
	return slices.ContainsFunc(ts, func(t *gpu.Tensor) bool { return t != nil && t.DType == gpu.F16 })
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
