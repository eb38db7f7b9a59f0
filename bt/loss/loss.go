package loss

import (
	"errors"
	"fmt"
	"math"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
	"github.com/bt-org/bt/shaders"
)

// DefaultLambda is the paper's weight of the redundancy-reduction term
// (main.py's --lambd).
const DefaultLambda = 0.0051

// bnEps is BatchNorm1d's default, which the official code's normalisation uses.
const bnEps = 1e-5

const (
	// colBX×colBY is the workgroup of the per-column kernels: 32 neighbouring
	// columns, so that a row's loads coalesce, and 8 threads per column.
	colBX, colBY = 32, 8
	// sumWG and maxSumGroups shape btloss_sum: enough workgroups to keep a
	// GPU's memory busy, few enough for one workgroup to add their partials.
	sumWG, maxSumGroups = 256, 1024
	finishWG            = 256
	statsLen            = 8
)

// columns is the workgroup of the per-column kernels.
var columns = shaders.Columns{BX: colBX, BY: colBY}

// BarlowTwins is the Barlow Twins loss of a batch of N embedding pairs of width D
// with its backward pass, on the device:
//
//	Ẑ = (Z − mean)/√(var + 1e-5)     per view and column, over the batch
//	C = Ẑ_Aᵀ·Ẑ_B / N                  [D, D]
//	L = Scale·(Σ_i (1 − C_ii)² + λ·Σ_{i≠j} C_ij²)
//
// exactly as the official code (BatchNorm1d without affine parameters in
// training mode, biased variance). Options choose λ, the scale and the
// paper's ablations of the loss. It takes one of two paths, chosen at
// NewBarlowTwins:
//
// The materialised path stores C: one GEMM forms it, the two gradient GEMMs
// dẐ_A = Ẑ_B·Gᵀ/N and dẐ_B = Ẑ_A·G/N read it. It costs 6·N·D² flops and
// D² floats.
//
// The fused path never forms C. Every quantity the loss needs is a trace
// that can be taken in the batch dimension instead, with the Gram matrices
// K_A = Ẑ_A·Ẑ_Aᵀ/N and K_B = Ẑ_B·Ẑ_Bᵀ/N [N, N]:
//
//	Σ_ij C_ij² = Σ_nm K_A[n,m]·K_B[n,m]
//	Ẑ_B·Cᵀ = K_B·Ẑ_A    Ẑ_A·C = K_A·Ẑ_B
//
// and the diagonal is an O(N·D) reduction. It costs 8·N²·D flops and 2·N²
// floats: at the paper's N = 2048, D = 8192 a third of the materialised
// path's work and an eighth of its memory, and D = 32768 needs no more
// than the embeddings themselves. Recomputing tiles of C in a fused kernel
// instead would cost more than the three GEMMs it replaces (8 to 10·N·D²);
// this does less than they do, through the tuned gpu.Gemm. Where D ≤ N
// (which AutoFused leaves to the materialised path) the fused path takes
// Σ_{i≠j} C_ij² from tiles of C summed in registers (btloss_tile), which is
// then the cheaper way and keeps the diagonal out exactly.
//
// Both paths share the O(N·D) kernels around the products: the
// normalisation, which also forms 1 − C_ii without cancellation, and the
// backward through it, which adds the diagonal's own term of dL/dC. It
// holds workspaces of 2·N·D floats plus D² (materialised) or 2·N² (fused);
// Bytes reports them.
//
// Over several ranks, each holding n of the N pairs, the loss of the
// global batch is had in one of two ways: every rank gathers all the
// embeddings (2·N·D values) and runs either path over them, or, with
// NewSharded, the ranks normalise with the global statistics and
// all-reduce their shares of C (D² values): fewer bytes where N > D/2,
// and each rank forms only its n/N of C.
type BarlowTwins struct {
	opt    Options
	onDiag float32 // weight of the invariance term: 1, or 0 without it

	// The feature normalisation's workspaces, made on first use: the
	// normalised embeddings [N, D], their scales [N] and their gradients.
	fa, fb, finva, finvb, ga, gb *gpu.Tensor

	d      *gpu.Device
	n, dim int
	fused  bool
	ready  bool // a Forward has been recorded

	ha, hb   *gpu.Tensor // [N, D] normalised embeddings Ẑ_A, Ẑ_B
	inv      *gpu.Tensor // [2, D] 1/√(var + eps) of view A, then view B
	gap      *gpu.Tensor // [D] 1 − C_ii, computed without cancelling (btloss_norm)
	c        *gpu.Tensor // [D, D] C, materialised path only
	ka, kb   *gpu.Tensor // [N, N] Gram matrices, fused path only
	part     *gpu.Tensor // [sumGroups, 2] partial sums of btloss_sum
	stats    *gpu.Tensor // [statsLen] loss, Σ(1−C_ii)², Σ_{i≠j}C², ΣC_ii, Σ_{i≠j}|C|
	tilePart *gpu.Tensor // [tiles, 2] btloss_tile's sums, fused path, made on first use
	tileStat *gpu.Tensor // [statsLen] Stats' figures from the tiles of C, fused path with D > N

	tile gpu.GemmTile // btloss_tile's tile; zero means GemmTileFor(D, D)

	// Over several ranks (NewSharded): the ranks and the workspaces of
	// the all-reduce of C, and the embeddings of the latest Forward, which
	// the normalisation's backward reads.
	shard  *shard
	za, zb *gpu.Tensor
}

// Norm is how the loss normalises the embeddings before C.
type Norm string

const (
	// BatchNorm standardises each feature over the batch: the paper's loss.
	BatchNorm Norm = "batch"
	// FeatureNorm standardises each embedding over its features instead:
	// the paper's "normalisation along the feature dimension" ablation.
	FeatureNorm Norm = "feature"
	// NoNorm uses the embeddings as they are, C = Z_Aᵀ Z_B / N: with a
	// projector without BatchNorm, the "no BN and no normalisation" ablation.
	NoNorm Norm = "none"
)

// Path is the way the loss is computed (see BarlowTwins).
type Path string

const (
	Auto         Path = "auto" // AutoFused chooses
	Fused        Path = "fused"
	Materialised Path = "materialised"
)

// Options are the loss's settings; DefaultOptions is the paper's loss.
type Options struct {
	Lambda float32 `json:"lambda"` // weight of the redundancy-reduction term
	// Scale multiplies the loss and its gradients (solo-learn's
	// scale_loss, 0.1 in its CIFAR recipe).
	Scale float32 `json:"scale"`
	Norm  Norm    `json:"norm"`
	// RedundancyOnly drops the invariance term: the paper's ablation.
	RedundancyOnly bool `json:"redundancy_only,omitempty"`
	Path           Path `json:"path"`
}

// DefaultOptions is the official loss: λ = 0.0051, no scale, batch
// normalisation, the path AutoFused picks.
func DefaultOptions() Options {
	return Options{Lambda: DefaultLambda, Scale: 1, Norm: BatchNorm, Path: Auto}
}

// Validate checks the options' ranges and names.
func (o Options) Validate() error {
	finite := func(v float32) bool { return !math.IsNaN(float64(v)) && !math.IsInf(float64(v), 0) }
	switch {
	case !finite(o.Lambda) || o.Lambda < 0:
		return fmt.Errorf("loss: λ %v: must be a finite number ≥ 0", o.Lambda)
	case !finite(o.Scale) || o.Scale <= 0:
		return fmt.Errorf("loss: scale %v: must be a finite number > 0", o.Scale)
	case o.Norm != BatchNorm && o.Norm != FeatureNorm && o.Norm != NoNorm:
		return fmt.Errorf("loss: normalisation %q: want %s, %s or %s", o.Norm, BatchNorm, FeatureNorm, NoNorm)
	case o.Path != Auto && o.Path != Fused && o.Path != Materialised:
		return fmt.Errorf("loss: path %q: want %s, %s or %s", o.Path, Auto, Fused, Materialised)
	}
	return nil
}

// Resolve is the path a loss for N×D embeddings takes on d.
func (p Path) Resolve(d *gpu.Device, n, dim int) bool {
	switch p {
	case Fused:
		return true
	case Materialised:
		return false
	}
	return AutoFused(d, n, dim)
}

// Stats are a batch's figures of the cross-correlation matrix, for logging.
type Stats struct {
	Loss       float32 // Scale·(OnDiag + λ·OffDiag), without OnDiag for RedundancyOnly
	OnDiag     float32 // Σ_i (1 − C_ii)², the invariance term
	OffDiag    float32 // Σ_{i≠j} C_ij², the redundancy-reduction term before Lambda
	MeanDiag   float32 // mean of C_ii: 1 when the views agree perfectly
	MeanAbsOff float32 // mean of |C_ij| over i ≠ j: 0 when decorrelated; 0 when D = 1
	// RMSOff is the root mean square of C_ij over i ≠ j, at least
	// MeanAbsOff, and known from every step's figures where MeanAbsOff
	// is not (StatsOf); 0 when D = 1.
	RMSOff float32
}

func maxBinding(d *gpu.Device) uint64 {
	return min(d.Limits.MaxStorageBufferBindingSize, d.Limits.MaxBufferSize)
}

// bindable reports whether a tensor of n floats can be bound on d.
func bindable(d *gpu.Device, n int) bool { return 4*uint64(n) <= maxBinding(d) }

// AutoFused chooses the path for N×D embeddings: fused where C [D, D]
// cannot be bound on d, materialised where the Gram matrices [N, N] cannot,
// else the one with fewer flops: fused when 8·N²·D < 6·N·D², that is when
// D > 4N/3. That choice also holds the smaller workspace (N² against D²).
func AutoFused(d *gpu.Device, n, dim int) bool {
	switch {
	case !bindable(d, dim*dim):
		return true
	case !bindable(d, n*n):
		return false
	}
	return 3*dim > 4*n
}

// NewBarlowTwins returns the loss for batches of n embedding pairs of width
// dim. Its workspaces come from d's pool; Release returns them.
func NewBarlowTwins(d *gpu.Device, n, dim int, o Options) (*BarlowTwins, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if n < 2 {
		return nil, fmt.Errorf("loss: needs a batch of at least 2 to normalise over, got %d", n)
	}
	return newBarlowTwins(d, n, dim, o, o.Path.Resolve(d, n, dim))
}

// newBarlowTwins checks that the workspaces for n rows of width dim on the
// chosen path can be bound on d, and allocates them.
func newBarlowTwins(d *gpu.Device, n, dim int, o Options, fused bool) (*BarlowTwins, error) {
	if n < 1 || dim < 1 {
		return nil, fmt.Errorf("loss: needs a batch and an embedding width ≥ 1, got %d×%d", n, dim)
	}
	limit := maxBinding(d) >> 20
	if n > (1<<31-1)/dim || !bindable(d, n*dim) {
		return nil, fmt.Errorf("loss: embeddings [%d, %d] need %d MiB but %s binds at most %d MiB per buffer; use a smaller batch or width",
			n, dim, 4*uint64(n)*uint64(dim)>>20, d.Info.Name, limit)
	}
	if !fused && (dim > (1<<31-1)/dim || !bindable(d, dim*dim)) {
		return nil, fmt.Errorf("loss: the materialised path stores C [%d, %d], %d MiB, but %s binds at most %d MiB per buffer; use the fused path",
			dim, dim, 4*uint64(dim)*uint64(dim)>>20, d.Info.Name, limit)
	}
	if fused && !bindable(d, n*n) {
		return nil, fmt.Errorf("loss: the fused path stores two Gram matrices [%d, %d], %d MiB each, but %s binds at most %d MiB per buffer; use the materialised path or a smaller batch",
			n, n, 4*uint64(n)*uint64(n)>>20, d.Info.Name, limit)
	}
	if groups := (dim + colBX - 1) / colBX; groups > int(d.Limits.MaxComputeWorkgroupsPerDimension) {
		return nil, fmt.Errorf("loss: width %d needs %d workgroups; %s allows %d", dim, groups, d.Info.Name, d.Limits.MaxComputeWorkgroupsPerDimension)
	}
	l := &BarlowTwins{opt: o, onDiag: 1, d: d, n: n, dim: dim, fused: fused}
	if o.RedundancyOnly {
		l.onDiag = 0
	}
	if err := l.alloc(); err != nil {
		return nil, err
	}
	return l, nil
}

// alloc allocates the workspaces, releasing them all on failure.
func (l *BarlowTwins) alloc() error {
	var err error
	get := func(shape ...int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var t *gpu.Tensor
		if t, err = l.d.NewTensor(shape...); err != nil {
			err = fmt.Errorf("loss: workspace: %w", err)
		}
		return t
	}
	l.ha, l.hb = get(l.n, l.dim), get(l.n, l.dim)
	l.inv, l.gap = get(2, l.dim), get(l.dim)
	if l.fused {
		l.ka, l.kb = get(l.n, l.n), get(l.n, l.n)
	} else {
		l.c = get(l.dim, l.dim)
	}
	// Room for the most partial sums any workgroup of btloss_sum leaves:
	// those of the fewest threads.
	l.part = get(l.sumGroups(shaders.ThreadChoices()[0].WG), 2)
	l.stats = get(statsLen)
	if err != nil {
		l.Release()
	}
	return err
}

// sumGroups is the number of workgroups btloss_sum runs with in
// workgroups of wg threads.
func (l *BarlowTwins) sumGroups(wg int) int {
	return min((l.sumLen()+wg-1)/wg, maxSumGroups)
}

// colCase is the per-column kernels' dispatch as tuning sees it.
func (l *BarlowTwins) colCase() gpu.KernelCase {
	return gpu.KernelCase{Class: gpu.KernelClassOf(gpu.FamilyLossColumns, l.n, l.dim, 1), Dims: [3]int{l.n, l.dim, 1},
		Norm: l.batchNorm(), Builtin: gpu.KernelVariant{Columns: columns}}
}

// cols is the workgroup of the per-column kernels: the tuned one for the
// loss's class where it runs at its sizes, else columns.
func (l *BarlowTwins) cols() shaders.Columns {
	if v := l.d.Variant(l.colCase()); colsRun(l.d, v, l.n, l.dim) {
		return v.Columns
	}
	return columns
}

// colsRun reports whether per-column workgroups v can run over [n, dim]:
// within the adapter's workgroups per dimension, and with btloss_norm's
// five loops over a column's n/BY rows within a CPU adapter's loop limit.
func colsRun(d *gpu.Device, v gpu.KernelVariant, n, dim int) bool {
	bx, by := v.Columns.BX, v.Columns.BY
	return (dim+bx-1)/bx <= int(d.Limits.MaxComputeWorkgroupsPerDimension) &&
		(!d.IsCPU() || 5*((n+by-1)/by)+64 <= gpu.MaxLoopSteps)
}

// sumCase is btloss_sum's dispatch as tuning sees it.
func (l *BarlowTwins) sumCase() gpu.KernelCase {
	return gpu.KernelCase{Class: gpu.KernelClassOf(gpu.FamilyLossSum, l.sumLen(), 1, 1), Dims: [3]int{l.sumLen(), 1, 1},
		Dot: l.fused, Builtin: gpu.KernelVariant{Threads: shaders.Threads{WG: sumWG}}}
}

// sumThreads is btloss_sum's workgroup: the tuned one for the loss's class,
// or sumWG.
func (l *BarlowTwins) sumThreads() int { return l.d.Variant(l.sumCase()).Threads.WG }

// ColumnVariants is the per-column kernels' candidates for case c on d,
// c's built-in workgroup first: 8 to 64 neighbouring columns of 64 to 256
// threads, those that run at c's sizes.
func ColumnVariants(d *gpu.Device, c gpu.KernelCase) []gpu.KernelVariant {
	return d.Candidates(gpu.FamilyLossColumns, c.Builtin, gpu.ColumnVariants(8, 16, 32, 64), func(v gpu.KernelVariant) bool {
		return colsRun(d, v, c.Dims[0], c.Dims[1])
	})
}

// SumVariants is btloss_sum's candidates, c's built-in workgroup first:
// workgroups of shaders.ThreadChoices.
func SumVariants(d *gpu.Device, c gpu.KernelCase) []gpu.KernelVariant {
	var vs []gpu.KernelVariant
	for _, t := range shaders.ThreadChoices() {
		vs = append(vs, gpu.KernelVariant{Threads: t})
	}
	return d.Candidates(gpu.FamilyLossSum, c.Builtin, vs, nil)
}

// normCost is btloss_norm's FLOPs and minimal traffic over [n, dim]: each
// view read once and its normalised copy written once, the scales and 1 −
// C_ii written (a mean, a variance and the scaling per value and view, and
// the diagonal's product: 10 operations per pair of values).
func normCost(n, dim int) (flops, bytes float64) {
	nd := float64(n * dim)
	return 10 * nd, 4 * (4*nd + 3*float64(dim))
}

// backCost is btloss_back's: both gradients read and written, both
// normalised views, the scales and 1 − C_ii read once (two sums and the
// update per value and view: 16 operations per pair).
func backCost(n, dim int) (flops, bytes float64) {
	nd := float64(n * dim)
	return 16 * nd, 4 * (6*nd + 3*float64(dim))
}

// sumCost is btloss_sum's over length values: read once (twice as many
// with the Gram matrices' products), a multiply-add or two each.
func sumCost(length int, dot bool) (flops, bytes float64) {
	if dot {
		return 3 * float64(length), 8 * float64(length)
	}
	return 2 * float64(length), 4 * float64(length)
}

// sumLen is the length of the array btloss_sum adds up: C or a Gram matrix.
func (l *BarlowTwins) sumLen() int {
	if l.fused {
		return l.n * l.n
	}
	return l.dim * l.dim
}

// PathName names the loss's path: "fused" or "materialised".
func PathName(fused bool) string {
	if fused {
		return "fused"
	}
	return "materialised"
}

// Size is the batch N and embedding width D the loss is made for.
func (l *BarlowTwins) Size() (n, dim int) { return l.n, l.dim }

// Fused reports whether the loss takes the fused path.
func (l *BarlowTwins) Fused() bool { return l.fused }

// Bytes is the device memory the loss's workspaces hold.
func (l *BarlowTwins) Bytes() uint64 {
	var b uint64
	for _, t := range l.tensors() {
		if t != nil {
			b += t.Bytes()
		}
	}
	return b
}

func (l *BarlowTwins) tensors() []*gpu.Tensor {
	return append([]*gpu.Tensor{l.ha, l.hb, l.inv, l.gap, l.c, l.ka, l.kb, l.part, l.stats, l.tilePart, l.tileStat,
		l.fa, l.fb, l.finva, l.finvb, l.ga, l.gb}, l.shard.tensors()...)
}

// Release returns the workspaces to the pool.
func (l *BarlowTwins) Release() {
	for _, t := range l.tensors() {
		t.Release()
	}
	l.shard.release()
	l.shard, l.za, l.zb = nil, nil, nil
	l.ha, l.hb, l.inv, l.gap, l.c, l.ka, l.kb, l.part, l.stats, l.tilePart, l.tileStat = nil, nil, nil, nil, nil, nil, nil, nil, nil, nil, nil
	l.fa, l.fb, l.finva, l.finvb, l.ga, l.gb = nil, nil, nil, nil, nil, nil
	l.ready = false
}

func (l *BarlowTwins) checkEmbeddings(what string, ts ...*gpu.Tensor) error {
	if l.ha == nil {
		return errors.New("loss: use of a released BarlowTwins")
	}
	for _, t := range ts {
		if t == nil {
			return fmt.Errorf("loss: %s: nil tensor", what)
		}
		if t.Len() != l.n*l.dim {
			return fmt.Errorf("loss: %s: tensor %v has %d elements; the loss was made for [%d, %d]", what, t.Shape, t.Len(), l.n, l.dim)
		}
	}
	return nil
}

// gramLoss reports whether Forward takes Σ C_ij² from the Gram matrices:
// on the fused path when D > N. There the rank of C, at most N, keeps
// Σ_{i≠j} C_ij² = Σ C_ij² − Σ C_ii² from cancelling, and the Gram matrices
// are what Backward needs anyway. Otherwise the fused path adds C up tile
// by tile (btloss_tile), which excludes the diagonal exactly and costs
// 2·N·D², no more than forming the Gram matrices would.
func (l *BarlowTwins) gramLoss() bool { return l.fused && l.dim > l.n }

// Forward records the loss of the embeddings za and zb [N, D] into loss[0]
// (loss has at least one element), where it stays on the device until the
// caller reads it. It keeps what Backward and Stats need in the workspaces,
// so a later Forward overwrites them.
func (l *BarlowTwins) Forward(r *gpu.Recorder, loss, za, zb *gpu.Tensor) error {
	if l.shard != nil {
		if err := l.checkEmbeddings("Forward", za, zb); err != nil {
			return err
		}
		if loss == nil || loss.Len() < 1 {
			return errors.New("loss: Forward needs a loss tensor of at least one element")
		}
		l.za, l.zb = za, zb
		return l.shardedForward(r, loss, za, zb)
	}
	if l.opt.Norm != FeatureNorm {
		return l.forward(r, loss, za, zb)
	}
	if err := l.checkEmbeddings("Forward", za, zb); err != nil {
		return err
	}
	if l.fa == nil {
		for _, t := range []struct {
			p     **gpu.Tensor
			shape []int
		}{{&l.fa, []int{l.n, l.dim}}, {&l.fb, []int{l.n, l.dim}}, {&l.finva, []int{l.n}}, {&l.finvb, []int{l.n}},
			{&l.ga, []int{l.n, l.dim}}, {&l.gb, []int{l.n, l.dim}}} {
			x, err := l.d.NewTensor(t.shape...)
			if err != nil {
				return err
			}
			*t.p = x
		}
	}
	rn := layers.RowNorm{Mode: "std", Eps: bnEps}
	if err := rn.Forward(r, l.fa, l.finva, za, l.n, l.dim); err != nil {
		return err
	}
	if err := rn.Forward(r, l.fb, l.finvb, zb, l.n, l.dim); err != nil {
		return err
	}
	return l.forward(r, loss, l.fa, l.fb)
}

// batchNorm reports whether the loss normalises each feature over the
// batch itself (the paper's loss), rather than not at all or per row.
func (l *BarlowTwins) batchNorm() bool { return l.opt.Norm == BatchNorm }

func (l *BarlowTwins) forward(r *gpu.Recorder, loss, za, zb *gpu.Tensor) error {
	if err := l.checkEmbeddings("Forward", za, zb); err != nil {
		return err
	}
	if loss == nil || loss.Len() < 1 {
		return errors.New("loss: Forward needs a loss tensor of at least one element")
	}
	n, dim := l.n, l.dim
	if err := l.norm(r, za, zb); err != nil {
		return err
	}
	if l.fused && !l.gramLoss() {
		groups, err := l.tileSums(r)
		if err != nil {
			return err
		}
		if err := l.finish(r, loss, l.stats, l.tilePart, groups, false); err != nil {
			return err
		}
		l.ready = true
		return nil
	}
	sum := []*gpu.Tensor{l.part}
	if l.fused {
		if err := l.gram(r); err != nil {
			return err
		}
		sum = append(sum, l.ka, l.kb)
	} else {
		if err := gpu.Gemm(r, l.c, l.ha, l.hb, gpu.GemmOp{M: dim, N: dim, K: n, TransA: true, Alpha: 1 / float32(n)}); err != nil {
			return err
		}
		sum = append(sum, l.c)
	}
	groups, err := l.sum(r, sum...)
	if err != nil {
		return err
	}
	if err := l.finish(r, loss, l.stats, l.part, groups, l.fused); err != nil {
		return err
	}
	l.ready = true
	return nil
}

// norm records btloss_norm: the normalised views, their scales and 1 − C_ii.
func (l *BarlowTwins) norm(r *gpu.Recorder, za, zb *gpu.Tensor) error {
	cols := l.cols()
	k, err := l.d.Kernel("btloss_norm", shaders.BTLossNorm{Norm: l.batchNorm(), Columns: cols})
	if err != nil {
		return err
	}
	return r.Dispatch(k, [3]int{(l.dim + cols.BX - 1) / cols.BX, 1, 1}, gpu.Params{}.U(l.n).U(l.dim).F(bnEps).Cost(normCost(l.n, l.dim)),
		l.ha, l.hb, l.inv, l.gap, za, zb)
}

// sum records btloss_sum over ts (the partials, then C or the two Gram
// matrices) and returns the number of partial sums it leaves.
func (l *BarlowTwins) sum(r *gpu.Recorder, ts ...*gpu.Tensor) (int, error) {
	wg := l.sumThreads()
	k, err := l.d.Kernel("btloss_sum", shaders.BTLossSum{Dot: l.fused, Subgroups: l.d.Subgroups, Threads: shaders.Threads{WG: wg}})
	if err != nil {
		return 0, err
	}
	groups := l.sumGroups(wg)
	return groups, r.Dispatch(k, [3]int{groups, 1, 1}, gpu.Params{}.U(l.sumLen()).U(l.dim).Cost(sumCost(l.sumLen(), l.fused)), ts...)
}

// gram records the Gram matrices K_A = Ẑ_A·Ẑ_Aᵀ/N and K_B = Ẑ_B·Ẑ_Bᵀ/N.
func (l *BarlowTwins) gram(r *gpu.Recorder) error {
	for _, g := range [][2]*gpu.Tensor{{l.ka, l.ha}, {l.kb, l.hb}} {
		op := gpu.GemmOp{M: l.n, N: l.n, K: l.dim, TransB: true, Alpha: 1 / float32(l.n)}
		if err := gpu.Gemm(r, g[0], g[1], g[1], op); err != nil {
			return err
		}
	}
	return nil
}

// finish records btloss_finish over groups partial sums; loss may be nil.
func (l *BarlowTwins) finish(r *gpu.Recorder, loss, stats, part *gpu.Tensor, groups int, full bool) error {
	k, err := l.d.Kernel("btloss_finish", shaders.BTLossFinish{Full: full, Loss: loss != nil, Threads: shaders.Threads{WG: finishWG}})
	if err != nil {
		return err
	}
	ts := []*gpu.Tensor{stats, part, l.gap}
	if loss != nil {
		ts = append([]*gpu.Tensor{loss}, ts...)
	}
	return r.Dispatch(k, [3]int{1, 1, 1}, gpu.Params{}.U(groups).U(l.dim).F(l.opt.Lambda).F(l.opt.Scale).F(l.onDiag), ts...)
}

// Backward records dL/dza and dL/dzb [N, D] (written, not accumulated) for
// the embeddings of the latest Forward, recorded before it on r or on an
// earlier submitted recording. Over several ranks (NewSharded) it reads
// those embeddings again, so they must not have changed since.
func (l *BarlowTwins) Backward(r *gpu.Recorder, dza, dzb *gpu.Tensor) error {
	if l.opt.Norm != FeatureNorm {
		return l.backward(r, dza, dzb)
	}
	if err := l.checkEmbeddings("Backward", dza, dzb); err != nil {
		return err
	}
	if err := l.backward(r, l.ga, l.gb); err != nil {
		return err
	}
	rn := layers.RowNorm{Mode: "std", Eps: bnEps}
	if err := rn.Backward(r, dza, l.ga, l.fa, l.finva, l.n, l.dim); err != nil {
		return err
	}
	return rn.Backward(r, dzb, l.gb, l.fb, l.finvb, l.n, l.dim)
}

func (l *BarlowTwins) backward(r *gpu.Recorder, dza, dzb *gpu.Tensor) error {
	if err := l.checkEmbeddings("Backward", dza, dzb); err != nil {
		return err
	}
	if !l.ready {
		return errors.New("loss: Backward needs a Forward recorded first")
	}
	if dza == dzb {
		return errors.New("loss: Backward needs separate tensors for the two views' gradients")
	}
	if l.shard != nil {
		return l.shardedBackward(r, dza, dzb)
	}
	n, dim := l.n, l.dim
	// The GEMMs give dL/dẐ for G = 2·Scale·λ·C; btloss_back adds the
	// diagonal's difference from that.
	alpha := 2 * l.opt.Scale * l.opt.Lambda / float32(n)
	if l.fused {
		if !l.gramLoss() {
			if err := l.gram(r); err != nil {
				return err
			}
		}
		if err := gpu.Gemm(r, dza, l.kb, l.ha, gpu.GemmOp{M: n, N: dim, K: n, Alpha: alpha}); err != nil {
			return err
		}
		if err := gpu.Gemm(r, dzb, l.ka, l.hb, gpu.GemmOp{M: n, N: dim, K: n, Alpha: alpha}); err != nil {
			return err
		}
	} else {
		if err := gpu.Gemm(r, dza, l.hb, l.c, gpu.GemmOp{M: n, N: dim, K: dim, TransB: true, Alpha: alpha}); err != nil {
			return err
		}
		if err := gpu.Gemm(r, dzb, l.ha, l.c, gpu.GemmOp{M: n, N: dim, K: dim, Alpha: alpha}); err != nil {
			return err
		}
	}
	return l.back(r, dza, dzb)
}

// back records btloss_back, which takes dza and dzb back through the
// normalisation and adds the diagonal's term.
func (l *BarlowTwins) back(r *gpu.Recorder, dza, dzb *gpu.Tensor) error {
	cols := l.cols()
	k, err := l.d.Kernel("btloss_back", shaders.BTLossBack{Norm: l.batchNorm(), Columns: cols})
	if err != nil {
		return err
	}
	return r.Dispatch(k, [3]int{(l.dim + cols.BX - 1) / cols.BX, 1, 1},
		gpu.Params{}.U(l.n).U(l.dim).F(l.opt.Lambda).F(l.opt.Scale).F(l.onDiag).Cost(backCost(l.n, l.dim)),
		dza, dzb, l.ha, l.hb, l.inv, l.gap)
}

// Stats reads back the figures of the latest Forward, waiting for the
// submitted work. Where the fused path took the loss from its Gram matrices
// (D > N), which cannot give Σ|C_ij|, it runs one more pass over C's tiles
// for MeanAbsOff (btloss_tile, the work of one N×D×D GEMM); call it at
// logging intervals, not every step.
func (l *BarlowTwins) Stats() (Stats, error) {
	if l.ha == nil {
		return Stats{}, errors.New("loss: use of a released BarlowTwins")
	}
	if !l.ready {
		return Stats{}, errors.New("loss: Stats needs a Forward recorded and submitted first")
	}
	v, err := l.stats.Download()
	if err != nil {
		return Stats{}, err
	}
	abs := v[4]
	if l.gramLoss() {
		err := l.d.Run(func(r *gpu.Recorder) error {
			groups, err := l.tileSums(r)
			if err != nil {
				return err
			}
			return l.finish(r, nil, l.tileStat, l.tilePart, groups, false)
		})
		if err != nil {
			return Stats{}, err
		}
		t, err := l.tileStat.Download()
		if err != nil {
			return Stats{}, err
		}
		abs = t[4]
	}
	v[4] = abs
	return l.statsOf(v, true), nil
}

// Figures is the tensor in which each Forward leaves its figures: loss,
// Σ(1−C_ii)², Σ_{i≠j}C², ΣC_ii and Σ_{i≠j}|C_ij|, the last except where
// the fused path takes the loss from its Gram matrices (D > N). A trainer
// reads it back with the step in place of the loss alone, so every step's
// terms arrive with its loss at no extra wait.
func (l *BarlowTwins) Figures() *gpu.Tensor { return l.stats }

// Scales is the tensor [2, D] in which each Forward leaves 1/√(σ² + ε) of
// every embedding dimension, view A's then view B's, σ its standard
// deviation over the batch before normalisation (the global batch's over
// several ranks) and ε 1e-5; Std turns a value back into σ. A trainer reads
// it back with the step's figures to watch for collapse. nil where the loss
// does not normalise over the batch (FeatureNorm, NoNorm), which fills no
// scales.
func (l *BarlowTwins) Scales() *gpu.Tensor {
	if !l.batchNorm() {
		return nil
	}
	return l.inv
}

// Std is the standard deviation σ held by one of Scales' values; 0 where
// σ² is too small to be told from ε's rounding.
func Std(scale float32) float64 {
	s := float64(scale)
	return math.Sqrt(max(0, 1/(s*s)-bnEps))
}

// StatsOf is the Stats of figures read back from Figures; MeanAbsOff is
// NaN where Figures lacks Σ|C_ij| (Stats computes it there).
func (l *BarlowTwins) StatsOf(v []float32) Stats { return l.statsOf(v, !l.gramLoss()) }

func (l *BarlowTwins) statsOf(v []float32, absKnown bool) Stats {
	s := Stats{Loss: v[0], OnDiag: v[1], OffDiag: v[2], MeanDiag: v[3] / float32(l.dim)}
	if l.dim > 1 {
		s.RMSOff = float32(math.Sqrt(float64(v[2]) / float64(l.dim*(l.dim-1))))
	}
	switch {
	case !absKnown:
		s.MeanAbsOff = float32(math.NaN())
	case l.dim > 1:
		s.MeanAbsOff = v[4] / float32(l.dim*(l.dim-1))
	}
	return s
}

// statsTile is btloss_tile's tile: GEMM's tile for a D×D product.
func (l *BarlowTwins) statsTile() (gpu.GemmTile, error) {
	t := l.tile
	if t == (gpu.GemmTile{}) {
		t = l.d.GemmTileFor(l.dim, l.dim)
	}
	if err := statsSpec(t).Validate(); err != nil {
		return t, fmt.Errorf("loss: statistics %w", err)
	}
	threads := statsSpec(t).Threads()
	if threads&(threads-1) != 0 || threads > int(l.d.Limits.MaxComputeInvocationsPerWorkgroup) {
		return t, fmt.Errorf("loss: statistics tile %+v: %d threads must be a power of two within %s's %d", t, threads, l.d.Info.Name, l.d.Limits.MaxComputeInvocationsPerWorkgroup)
	}
	if shared := 4*t.BK*(t.BM+t.BN) + 8*threads; shared > int(l.d.Limits.MaxComputeWorkgroupStorageSize) {
		return t, fmt.Errorf("loss: statistics tile %+v needs %d bytes of workgroup memory; %s allows %d", t, shared, l.d.Info.Name, l.d.Limits.MaxComputeWorkgroupStorageSize)
	}
	return t, nil
}

// statsSpec is btloss_tile's specialisation with tile t: both operands
// are [N, D], stored along m and n, so the staging loads run along them.
func statsSpec(t gpu.GemmTile) shaders.Tile {
	return shaders.Tile{BM: t.BM, BN: t.BN, BK: t.BK, TM: t.TM, TN: t.TN}
}

// tileSums records btloss_tile: Σ_{i≠j} C_ij² and Σ_{i≠j} |C_ij| of every
// tile of C into tilePart, from the latest normalisation's Ẑ. It returns
// the number of tiles.
func (l *BarlowTwins) tileSums(r *gpu.Recorder) (int, error) {
	t, err := l.statsTile()
	if err != nil {
		return 0, err
	}
	gx, gy := (l.dim+t.BN-1)/t.BN, (l.dim+t.BM-1)/t.BM
	if max(gx, gy) > int(l.d.Limits.MaxComputeWorkgroupsPerDimension) {
		return 0, fmt.Errorf("loss: width %d needs %d×%d tiles of %+v; %s allows %d per dimension", l.dim, gx, gy, t, l.d.Info.Name, l.d.Limits.MaxComputeWorkgroupsPerDimension)
	}
	if l.tilePart == nil || l.tilePart.Len() != 2*gx*gy {
		l.tilePart.Release()
		if l.tilePart, err = l.d.NewTensor(gx*gy, 2); err != nil {
			return 0, err
		}
	}
	if l.tileStat == nil {
		if l.tileStat, err = l.d.NewTensor(statsLen); err != nil {
			return 0, err
		}
	}
	k, err := l.d.Kernel("btloss_tile", statsSpec(t))
	if err != nil {
		return 0, err
	}
	return gx * gy, r.Dispatch(k, [3]int{gx, gy, 1}, gpu.Params{}.U(l.dim).U(l.n).F(1/float32(l.n)), l.tilePart, l.ha, l.hb)
}
