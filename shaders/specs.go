package shaders

import (
	"errors"
	"fmt"
	"slices"
	"strings"
)

// MaxInvocations is the most invocations a workgroup may have, and the
// most along x: WebGPU's default limits, which every adapter meets.
const MaxInvocations = 256

// Threads is a one-dimensional workgroup of WG invocations: the variant a
// kernel that takes it can be built in. Powers of two from 32 to 256 are
// the choices (ThreadChoices); a kernel that reduces over its workgroup
// needs a power of two.
type Threads struct{ WG int }

// ThreadChoices lists the workgroups a tuner may try.
func ThreadChoices() []Threads { return []Threads{{32}, {64}, {128}, {256}} }

// Validate checks that WG is within the limits and, for a tree
// reduction (pow2), a power of two.
func (t Threads) Validate(pow2 bool) error {
	if t.WG < 1 || t.WG > MaxInvocations {
		return fmt.Errorf("workgroup of %d invocations: want 1 to %d", t.WG, MaxInvocations)
	}
	if pow2 && t.WG&(t.WG-1) != 0 {
		return fmt.Errorf("workgroup of %d invocations: a reduction over it needs a power of two", t.WG)
	}
	return nil
}

// Columns is a workgroup of BX columns of BY threads, each column summing
// one output (lib.tmpl's total): the variant a column-reducing kernel can
// be built in. ColumnChoices lists the choices.
type Columns struct{ BX, BY int }

// ColumnChoices lists the column layouts a tuner may try: BX·BY from 64 to
// 256 invocations, BX from 1 to 64, all powers of two.
func ColumnChoices() []Columns {
	var cs []Columns
	for bx := 1; bx <= 64; bx *= 2 {
		for by := 1; by <= MaxInvocations; by *= 2 {
			if n := bx * by; n >= 64 && n <= MaxInvocations {
				cs = append(cs, Columns{bx, by})
			}
		}
	}
	return cs
}

// Validate checks that the workgroup is within the limits and its columns
// a power of two long, as the tree of total halves them.
func (c Columns) Validate() error {
	if c.BX < 1 || c.BY < 1 || c.BX*c.BY > MaxInvocations || c.BY&(c.BY-1) != 0 {
		return fmt.Errorf("workgroup of %d×%d: want BX, BY ≥ 1, BY a power of two and BX·BY ≤ %d", c.BX, c.BY, MaxInvocations)
	}
	return nil
}

// oneOf reports an error unless v is one of the allowed values.
func oneOf[T ~string](what string, v T, allowed ...T) error {
	if !slices.Contains(allowed, v) {
		return fmt.Errorf("%s %q: want one of %v", what, v, allowed)
	}
	return nil
}

// ReduceOp is what the reduce kernel computes over each column.
type ReduceOp string

const (
	ReduceSum     ReduceOp = "sum"
	ReduceSumSq   ReduceOp = "sumsq"
	ReduceMean    ReduceOp = "mean"
	ReduceMeanVar ReduceOp = "meanvar"
)

// Reduce specialises reduce.wgsl: Op over the a and c axes of x viewed as
// [a, b, c], with X the element type of x.
type Reduce struct {
	Op ReduceOp
	X  Elem
	Columns
	Subgroups bool // sums in subgroups; needs BX = 1
}

// Key implements Specialisation.
func (s Reduce) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s Reduce) Validate() error {
	return errors.Join(oneOf("reduction", s.Op, ReduceSum, ReduceSumSq, ReduceMean, ReduceMeanVar),
		s.Columns.Validate(), subgroupsOn(s.Subgroups, s.BX), elem(s.X))
}

func subgroupsOn(subgroups bool, bx int) error {
	if subgroups && bx != 1 {
		return fmt.Errorf("subgroup sums take one column per workgroup; BX is %d", bx)
	}
	return nil
}

func elem(e Elem) error {
	if !e.valid() {
		return fmt.Errorf("element type %q: want %s or %s", e, F32, F16)
	}
	return nil
}

// Elementwise specialises elementwise.wgsl: y[i] = Expr over the named
// Inputs, the tensors named in Halves ("y" or an input) stored as f16, E
// elements per invocation.
type Elementwise struct {
	Expr   string
	Inputs []string
	Halves []string
	Threads
	E int
}

// maxElements bounds Elementwise.E, the trips of its unrolled loop.
const maxElements = 64

// ElementChoices lists the elements per invocation a tuner may try.
func ElementChoices() []int { return []int{1, 4, 16} }

// Key implements Specialisation.
func (s Elementwise) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s Elementwise) Validate() error {
	if strings.TrimSpace(s.Expr) == "" {
		return errors.New("elementwise: empty expression")
	}
	for _, h := range s.Halves {
		if h != "y" && !slices.Contains(s.Inputs, h) {
			return fmt.Errorf("elementwise: %q stored as f16 is neither y nor an input %v", h, s.Inputs)
		}
	}
	if s.E < 1 || s.E > maxElements {
		return fmt.Errorf("elementwise: %d elements per invocation: want 1 to %d", s.E, maxElements)
	}
	return s.Threads.Validate(false)
}

// FMA specialises fma.wgsl, the throughput probe: Chains independent
// chains of multiply-adds per invocation, each loop trip Unroll of them.
type FMA struct {
	Chains, Unroll int
	Threads
}

// Key implements Specialisation.
func (s FMA) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s FMA) Validate() error {
	if s.Chains < 1 || s.Unroll < 1 {
		return fmt.Errorf("fma: %d chains unrolled %d times: want ≥ 1 each", s.Chains, s.Unroll)
	}
	return s.Threads.Validate(false)
}

// SubgroupProbe specialises subgroup_size.wgsl.
type SubgroupProbe struct{ Threads }

// Key implements Specialisation.
func (s SubgroupProbe) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s SubgroupProbe) Validate() error { return s.Threads.Validate(false) }

// PoolOp is a pass of pool.wgsl.
type PoolOp string

const (
	MaxPool         PoolOp = "max"
	MaxPoolBackward PoolOp = "max_backward"
	AvgPool         PoolOp = "avg" // global average
	AvgPoolBackward PoolOp = "avg_backward"
)

// maxPoolWindow bounds a max pool's window, whose loops the kernel unrolls.
const maxPoolWindow = 64

// Pool specialises pool.wgsl: a max pool's K×K window with stride S and
// padding Pad (zero for the global average), In and Out the element types
// of its input and output.
type Pool struct {
	Op        PoolOp
	K, S, Pad int
	In, Out   Elem
	Threads
}

// Key implements Specialisation.
func (s Pool) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s Pool) Validate() error {
	err := errors.Join(oneOf("pool", s.Op, MaxPool, MaxPoolBackward, AvgPool, AvgPoolBackward),
		elem(s.In), elem(s.Out), s.Threads.Validate(false))
	if err != nil {
		return err
	}
	if s.Op == AvgPool || s.Op == AvgPoolBackward {
		if s.K != 0 || s.S != 0 || s.Pad != 0 {
			return fmt.Errorf("pool %+v: the global average has no window", s)
		}
		return nil
	}
	if s.K < 1 || s.K > maxPoolWindow || s.S < 1 || s.Pad < 0 || 2*s.Pad > s.K {
		return fmt.Errorf("pool %+v: want 1 ≤ K ≤ %d, S ≥ 1 and 0 ≤ Pad ≤ K/2", s, maxPoolWindow)
	}
	return nil
}

// RowNormMode is how rownorm.wgsl normalises a row.
type RowNormMode string

const (
	L2  RowNormMode = "l2"  // to unit length
	Std RowNormMode = "std" // to zero mean and unit variance
)

// RowNorm specialises rownorm.wgsl: one row per workgroup.
type RowNorm struct {
	Mode      RowNormMode
	Backward  bool
	Subgroups bool
	Threads
}

// Key implements Specialisation.
func (s RowNorm) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s RowNorm) Validate() error {
	return errors.Join(oneOf("row norm", s.Mode, L2, Std), s.Threads.Validate(true))
}

// Xent specialises xent.wgsl: one row of logits per workgroup.
type Xent struct {
	Backward bool
	Threads
}

// Key implements Specialisation.
func (s Xent) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s Xent) Validate() error { return s.Threads.Validate(true) }

// OptimRule is the update optim.wgsl applies.
type OptimRule string

const (
	Momentum OptimRule = "momentum" // SGD and LARS
	AdamW    OptimRule = "adamw"
)

// Optim specialises optim.wgsl: E elements per invocation, with LARS's
// trust ratio where Trust.
type Optim struct {
	Rule      OptimRule
	Trust     bool
	E         int
	Subgroups bool
	Threads
}

// Key implements Specialisation.
func (s Optim) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s Optim) Validate() error {
	err := errors.Join(oneOf("optimiser rule", s.Rule, Momentum, AdamW), s.Threads.Validate(true))
	if s.E < 1 || s.E > 16 {
		err = errors.Join(err, fmt.Errorf("optimiser: %d elements per invocation: want 1 to 16", s.E))
	}
	return err
}

// OptimNorms specialises optim_norms.wgsl, the norms of a LARS step.
type OptimNorms struct {
	Subgroups bool
	Threads
}

// Key implements Specialisation.
func (s OptimNorms) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s OptimNorms) Validate() error { return s.Threads.Validate(true) }

// BTLossNorm specialises btloss_norm.wgsl: with Norm, each view's columns
// are standardised; with Given, the standardised views are inputs and only
// the sums over them are taken.
type BTLossNorm struct {
	Norm, Given bool
	Columns
}

// Key implements Specialisation.
func (s BTLossNorm) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s BTLossNorm) Validate() error { return s.Columns.Validate() }

// BTLossBack specialises btloss_back.wgsl, the gradient taken back
// through the columns' standardisation where Norm.
type BTLossBack struct {
	Norm bool
	Columns
}

// Key implements Specialisation.
func (s BTLossBack) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s BTLossBack) Validate() error { return s.Columns.Validate() }

// BTLossSum specialises btloss_sum.wgsl, the loss's partial sums; Dot
// adds the views' products (the fused path).
type BTLossSum struct {
	Dot       bool
	Subgroups bool
	Threads
}

// Key implements Specialisation.
func (s BTLossSum) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s BTLossSum) Validate() error { return s.Threads.Validate(true) }

// BTLossFinish specialises btloss_finish.wgsl, which merges the partial
// sums into the statistics, the loss where Loss, from every term where
// Full.
type BTLossFinish struct {
	Full, Loss bool
	Threads
}

// Key implements Specialisation.
func (s BTLossFinish) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s BTLossFinish) Validate() error { return s.Threads.Validate(true) }

// BNMode is a pass of BatchNorm.
type BNMode string

const (
	BNTrain    BNMode = "train"
	BNBackward BNMode = "backward"
	BNEval     BNMode = "eval"
)

// BNOp is what a BatchNorm kernel computes, whatever its layout: the
// pass, with γ and β where Affine and a ReLU fused where ReLU, over data
// stored as f16 where Half.
type BNOp struct {
	Mode         BNMode
	Affine, ReLU bool
	Half         bool
}

// Steps is lib.tmpl's bn snippet for this op, its values handled as t;
// finish adds the steps that end a pass.
func (o BNOp) Steps(t string, finish bool) BNSteps { return BNSteps{o, t, finish} }

// BNSteps is what lib.tmpl's bn snippet is executed with.
type BNSteps struct {
	BNOp
	T      string
	Finish bool
}

func (o BNOp) validate(modes ...BNMode) error {
	return oneOf("BatchNorm pass", o.Mode, modes...)
}

// storage is the storage type of values handled as t.
func storage(t string, half bool) string {
	if half {
		return strings.Replace(t, "f32", "f16", 1)
	}
	return t
}

// BatchNorm specialises batchnorm.wgsl, the workgroup layout GPUs get:
// in training and backward, BX channels per workgroup of BX·BY threads,
// reading V values at a time; in evaluation one value per invocation of
// BX·BY.
type BatchNorm struct {
	BNOp
	V int
	Columns
	Subgroups bool // sums in subgroups; needs BX = 1
}

// Key implements Specialisation.
func (s BatchNorm) Key() string { return structKey(s) }

// WG is the number of invocations in a workgroup.
func (s BatchNorm) WG() int { return s.BX * s.BY }

// T is the type values are handled in: f32, or vec4<f32> where V is 4.
func (s BatchNorm) T() string {
	if s.V == 4 {
		return "vec4<f32>"
	}
	return "f32"
}

// S is the storage type of the data.
func (s BatchNorm) S() string { return storage(s.T(), s.Half) }

// Validate implements Specialisation.
func (s BatchNorm) Validate() error {
	err := errors.Join(s.validate(BNTrain, BNBackward, BNEval), s.Columns.Validate(), subgroupsOn(s.Subgroups, s.BX))
	if s.V != 1 && s.V != 4 {
		err = errors.Join(err, fmt.Errorf("BatchNorm reads %d values at a time: want 1 or 4", s.V))
	}
	if s.Mode == BNEval && (s.V != 1 || s.Subgroups) {
		err = errors.Join(err, errors.New("BatchNorm evaluation reads one value per invocation, without subgroups"))
	}
	return err
}

// BatchNormSerial specialises batchnorm_serial.wgsl, the layout CPU
// adapters get: pass 1 of a channel's chunks, or pass 2 merging them.
type BatchNormSerial struct {
	BNOp
	Pass int
}

// Key implements Specialisation.
func (s BatchNormSerial) Key() string { return structKey(s) }

// S is the storage type of the data.
func (s BatchNormSerial) S() string { return storage("f32", s.Half) }

// Validate implements Specialisation.
func (s BatchNormSerial) Validate() error {
	err := s.validate(BNTrain, BNBackward)
	if s.Pass != 1 && s.Pass != 2 {
		err = errors.Join(err, fmt.Errorf("serial BatchNorm pass %d: want 1 or 2", s.Pass))
	}
	return err
}

// BNSyncMode is a pass of synchronised BatchNorm.
type BNSyncMode string

const (
	BNSyncStats BNSyncMode = "stats" // each channel's mean and sum of squared deviations
	BNSyncGrad  BNSyncMode = "grad"  // each channel's Σdy and Σdy·x̂
	BNSyncApply BNSyncMode = "apply" // the gradient of the input
)

// BatchNormSync specialises batchnorm_sync.wgsl: one channel per
// workgroup in the stats and grad passes, one value per invocation in
// apply.
type BatchNormSync struct {
	Mode         BNSyncMode
	Affine, ReLU bool
	Half         bool
	Threads
}

// Key implements Specialisation.
func (s BatchNormSync) Key() string { return structKey(s) }

// S is the storage type of the data.
func (s BatchNormSync) S() string { return storage("f32", s.Half) }

// Validate implements Specialisation.
func (s BatchNormSync) Validate() error {
	return errors.Join(oneOf("synchronised BatchNorm pass", s.Mode, BNSyncStats, BNSyncGrad, BNSyncApply), s.Threads.Validate(true))
}

// AugmentStage is a stage of augment.wgsl.
type AugmentStage string

const (
	AugmentResize AugmentStage = "resize" // crop, resize and flip
	AugmentColour AugmentStage = "colour" // jitter, grayscale and solarization
	AugmentBlur   AugmentStage = "blur"   // one direction of the Gaussian blur
	AugmentFinish AugmentStage = "finish" // solarization and normalisation
)

// Augment specialises augment.wgsl for C channels, Meta words of
// parameters per view.
type Augment struct {
	Stage             AugmentStage
	C, Meta           int
	Bicubic, Vertical bool
}

// Key implements Specialisation.
func (s Augment) Key() string { return structKey(s) }

// Validate implements Specialisation.
func (s Augment) Validate() error {
	err := oneOf("augment stage", s.Stage, AugmentResize, AugmentColour, AugmentBlur, AugmentFinish)
	if s.C != 1 && s.C != 3 {
		err = errors.Join(err, fmt.Errorf("augment: %d channels: want 1 or 3", s.C))
	}
	if s.Meta < 1 {
		err = errors.Join(err, fmt.Errorf("augment: %d words of parameters: want ≥ 1", s.Meta))
	}
	if s.Vertical && s.Stage != AugmentBlur {
		err = errors.Join(err, errors.New("augment: only the blur has a vertical pass"))
	}
	return err
}

// ReduceFn is an associative operation lib.tmpl's total reduces with.
type ReduceFn string

const (
	Add ReduceFn = "add"
	Max ReduceFn = "max"
)

// Reduction is what lib.tmpl's total is executed with: a function Fn(v,
// lx, ly) that reduces v of type T with Op over the BY threads of column
// lx of a BX×BY workgroup, in subgroups where Subgroups (sums only). A
// kernel builds one with the template function reduction.
type Reduction struct {
	Fn        string
	Op        ReduceFn
	T         string
	Subgroups bool
	Columns
}

func newReduction(fn string, op ReduceFn, t string, bx, by int, subgroups bool) (Reduction, error) {
	r := Reduction{fn, op, t, subgroups, Columns{bx, by}}
	err := errors.Join(oneOf("reduction", op, Add, Max), r.Columns.Validate(), subgroupsOn(subgroups, bx))
	if subgroups && op != Add {
		err = errors.Join(err, fmt.Errorf("reduction %s: subgroups only add", fn))
	}
	return r, err
}

// Combine is the WGSL expression that combines a and b.
func (r Reduction) Combine(a, b string) string {
	if r.Op == Max {
		return "max(" + a + ", " + b + ")"
	}
	return a + " + " + b
}
