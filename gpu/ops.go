package gpu

import (
	"fmt"
	"slices"
	"strings"

	"github.com/bt-org/bt/shaders"
)

// elementwiseWG is the workgroup size of elementwise kernels.
const elementwiseWG = 256

// grid1D covers n invocations with workgroups of wg, splitting the
// workgroup count over x and y when it exceeds the per-dimension limit.
func (d *Device) grid1D(n, wg int) ([3]int, error) {
	groups := (n + wg - 1) / wg
	maxWG := int(d.Limits.MaxComputeWorkgroupsPerDimension)
	x := min(groups, maxWG)
	y := (groups + x - 1) / x
	if y > maxWG {
		return [3]int{}, fmt.Errorf("gpu: %d elements need more than %d×%d workgroups", n, maxWG, maxWG)
	}
	return [3]int{x, y, 1}, nil
}

// elementwise records y[i] = expr over all elements, where expr reads the
// named inputs (bound in order after y) and p.alpha. Inputs have y's length,
// unless period > 0: then each has mod elements and is read at (i / div) % mod.
func elementwise(r *Recorder, op, expr string, names []string, alpha float32, stride, period int, y *Tensor, xs ...*Tensor) error {
	if err := y.check(); err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	for i, x := range xs {
		if err := x.check(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
		if period == 0 && x.n != y.n {
			return fmt.Errorf("gpu: %s: input %s is %v, output is %v; they need the same number of elements", op, names[i], x.Shape, y.Shape)
		}
		if period > 0 && (x.n != period || stride < 1 || y.n%(stride*period) != 0) {
			return fmt.Errorf("gpu: %s: input %s %v broadcast with stride %d, period %d does not tile %v", op, names[i], x.Shape, stride, period, y.Shape)
		}
	}
	return dispatchElementwise(r, expr, names, alpha, stride, period, y, xs...)
}

// gather records y[i] = expr, where expr reads the input x, named name, at
// any index it computes; keeping within x is the caller's part.
func gather(r *Recorder, op, expr, name string, y, x *Tensor) error {
	for _, t := range []*Tensor{y, x} {
		if err := t.check(); err != nil {
			return fmt.Errorf("%s: %w", op, err)
		}
	}
	return dispatchElementwise(r, expr, []string{name}, 0, 0, 0, y, x)
}

func dispatchElementwise(r *Recorder, expr string, names []string, alpha float32, stride, period int, y *Tensor, xs ...*Tensor) error {
	halves := []string{}
	for i, t := range append([]*Tensor{y}, xs...) {
		if t.DType == F16 {
			halves = append(halves, append([]string{"y"}, names...)[i])
		}
	}
	expr = widen(expr, halves)
	v := r.d.Variant(KernelCase{Class: KernelClassOf(FamilyElementwise, y.n, 1, 1), Dims: [3]int{y.n, 1, 1}, Inputs: len(xs),
		Builtin: KernelVariant{Threads: shaders.Threads{WG: elementwiseWG}, E: 1}})
	k, err := r.d.Kernel("elementwise", shaders.Elementwise{Expr: expr, Inputs: names, Halves: halves, Threads: v.Threads, E: v.E})
	if err != nil {
		return err
	}
	grid, err := r.d.grid1D((y.n+v.E-1)/v.E, v.Threads.WG)
	if err != nil {
		return err
	}
	// Minimal traffic: every input read once and y written once; one
	// operation per input and element.
	bytes := 0
	for _, t := range append([]*Tensor{y}, xs...) {
		bytes += int(t.bytes)
	}
	return r.Dispatch(k, grid, Params{}.U(y.n).F(alpha).U(stride).U(max(period, 1)).Cost(float64(y.n*len(xs)), float64(bytes)),
		append([]*Tensor{y}, xs...)...)
}

// widen makes expr read the tensors named in halves, stored as f16, as
// f32: every name[…] becomes f32(name[…]), index expressions included.
func widen(expr string, halves []string) string {
	if len(halves) == 0 {
		return expr
	}
	ident := func(c byte) bool {
		return c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9'
	}
	var b strings.Builder
	for i := 0; i < len(expr); {
		j := i
		for j < len(expr) && ident(expr[j]) {
			j++
		}
		if j == i {
			b.WriteByte(expr[i])
			i++
			continue
		}
		name := expr[i:j]
		if j == len(expr) || expr[j] != '[' || !slices.Contains(halves, name) || i > 0 && expr[i-1] == '.' {
			b.WriteString(name)
			i = j
			continue
		}
		end, depth := j, 0
		for ; end < len(expr); end++ {
			if expr[end] == '[' {
				depth++
			} else if expr[end] == ']' {
				if depth--; depth == 0 {
					break
				}
			}
		}
		fmt.Fprintf(&b, "f32(%s[%s])", name, widen(expr[j+1:end], halves))
		i = end + 1
	}
	return b.String()
}

// Fill sets every element of y to v.
func Fill(r *Recorder, y *Tensor, v float32) error {
	return elementwise(r, "Fill", "p.alpha", nil, v, 0, 0, y)
}

// Add writes y = a + b.
func Add(r *Recorder, y, a, b *Tensor) error {
	return elementwise(r, "Add", "a[i] + b[i]", []string{"a", "b"}, 0, 0, 0, y, a, b)
}

// AddReLU writes y = max(a + b, 0): a residual block's sum and its ReLU in
// one pass.
func AddReLU(r *Recorder, y, a, b *Tensor) error {
	return elementwise(r, "AddReLU", "relu(a[i] + b[i])", []string{"a", "b"}, 0, 0, 0, y, a, b)
}

// Scale writes y = alpha·x; y may be x.
func Scale(r *Recorder, y, x *Tensor, alpha float32) error {
	if y != nil && x != nil && y.buf == x.buf && y.buf != nil {
		return elementwise(r, "Scale", "p.alpha * y[i]", nil, alpha, 0, 0, y)
	}
	return elementwise(r, "Scale", "p.alpha * x[i]", []string{"x"}, alpha, 0, 0, y, x)
}

// Axpy accumulates y += alpha·x.
func Axpy(r *Recorder, y, x *Tensor, alpha float32) error {
	return elementwise(r, "Axpy", "y[i] + p.alpha * x[i]", []string{"x"}, alpha, 0, 0, y, x)
}

// ReLU writes y = max(x, 0); y may be x, to save the memory of a copy.
func ReLU(r *Recorder, y, x *Tensor) error {
	if y != nil && x != nil && y.buf == x.buf && y.buf != nil {
		return elementwise(r, "ReLU", "relu(y[i])", nil, 0, 0, 0, y)
	}
	return elementwise(r, "ReLU", "relu(x[i])", []string{"x"}, 0, 0, 0, y, x)
}

// ReLUBackward writes dx = dy where x > 0 and 0 elsewhere; x is the ReLU's
// input (or its output: both are positive at the same places).
func ReLUBackward(r *Recorder, dx, dy, x *Tensor) error {
	return elementwise(r, "ReLUBackward", "select(0.0, dy[i], x[i] > 0.0)", []string{"dy", "x"}, 0, 0, 0, dx, dy, x)
}

// AddBias adds a broadcast bias in place: y[i] += bias[(i / stride) % period].
// For a [rows, cols] matrix with a per-column bias, stride is 1 and period is
// cols; for an NCHW tensor with a per-channel bias, stride is H·W and period C.
func AddBias(r *Recorder, y, bias *Tensor, stride, period int) error {
	if period < 1 {
		return fmt.Errorf("gpu: AddBias: period %d must be ≥ 1", period)
	}
	return elementwise(r, "AddBias", "y[i] + bias[(i / p.stride) % p.period]", []string{"bias"}, 0, stride, period, y, bias)
}

// ReduceOp is what Reduce computes.
type ReduceOp string

// The reductions Reduce offers.
const (
	Sum   ReduceOp = "sum"
	SumSq ReduceOp = "sumsq"
	Mean  ReduceOp = "mean"
)

func reduceKernel(r *Recorder, op string, beta float32, x *Tensor, a, b, c int, outs ...*Tensor) error {
	if err := x.check(); err != nil {
		return err
	}
	if a < 1 || b < 1 || c < 1 || x.n != a*b*c {
		return fmt.Errorf("gpu: %s: %v viewed as [%d %d %d]: sizes must be ≥ 1 and multiply to %d", op, x.Shape, a, b, c, x.n)
	}
	for _, o := range outs {
		if err := o.check(); err != nil {
			return err
		}
		if o.n != b {
			return fmt.Errorf("gpu: %s: output %v must have %d elements", op, o.Shape, b)
		}
	}
	bx := 1
	if c == 1 {
		bx = 32
	}
	builtin := KernelVariant{Columns: shaders.Columns{BX: bx, BY: 256 / bx}}
	v := r.d.Variant(KernelCase{Class: KernelClassOf(FamilyReduce, a, b, c), Dims: [3]int{a, b, c}, Builtin: builtin})
	if !r.d.reduceFits(v, a, c) {
		v = builtin
	}
	// Subgroups sum a b's values where a workgroup holds one b
	// (shaders/lib.tmpl's total).
	k, err := r.d.Kernel("reduce", shaders.Reduce{Op: shaders.ReduceOp(op), X: shaders.Elem(x.DType.String()), Columns: v.Columns,
		Subgroups: r.d.Subgroups && v.Columns.BX == 1})
	if err != nil {
		return err
	}
	grid, err := r.d.grid1D(b, v.Columns.BX)
	if err != nil {
		return err
	}
	// Minimal traffic: x read once, each output written once (and read
	// where it accumulates); an add, or a multiply-add, per element of x.
	flops := float64(x.n)
	if op == "sumsq" || op == "meanvar" {
		flops *= 2
	}
	bytes := float64(x.bytes) + float64(4*b*len(outs))*(1+float64(min(beta, 1)))
	return r.Dispatch(k, grid, Params{}.U(a).U(b).U(c).F(beta).Cost(flops, bytes), append(outs, x)...)
}

// Reduce writes out[j] = op over x[i, j, k] for x viewed as [a, b, c]:
// [rows, cols, 1] reduces the columns of a matrix, [1, rows, cols] its rows,
// and [N, C, H·W] the channels of an NCHW tensor. out has b elements.
func Reduce(r *Recorder, out, x *Tensor, a, b, c int, op ReduceOp) error {
	switch op {
	case Sum, SumSq, Mean:
	default:
		return fmt.Errorf("gpu: unknown reduction %q", op)
	}
	return reduceKernel(r, string(op), 0, x, a, b, c, out)
}

// AccumulateSum adds the sums of x viewed as [a, b, c] over a and c into
// out: out[j] += Σ x[i, j, k]. Bias gradients accumulate this way.
func AccumulateSum(r *Recorder, out, x *Tensor, a, b, c int) error {
	return reduceKernel(r, string(Sum), 1, x, a, b, c, out)
}

// MeanVar writes the mean and the biased variance of x viewed as [a, b, c]
// over a and c, for each of the b slices, in two passes.
func MeanVar(r *Recorder, mean, variance, x *Tensor, a, b, c int) error {
	if mean == variance {
		return fmt.Errorf("gpu: MeanVar needs separate mean and variance tensors")
	}
	return reduceKernel(r, "meanvar", 0, x, a, b, c, mean, variance)
}

// GemmTile is GEMM's specialisation: each workgroup computes a BM×BN tile of
// C in steps of BK, each thread a TM×TN block (shaders/gemm_staged.wgsl).
// Direct tiles stage nothing in workgroup memory (for CPU adapters;
// shaders/gemm_direct.wgsl): BM = TM, a thread's TN columns lie BN/TN
// apart, and BK is unused but for rounding a split reduction's chunks.
//
// Staged tiles have variants, switches of the same kernel (shaders.Tile):
// Double buffers the workgroup arrays (one barrier a step, the next step's
// loads issued before this one is computed), Pad adds floats to their rows
// against bank conflicts (0 or a multiple of 4), and Vec4 loads A and B
// as vec4s wherever an operand is stored contiguous and aligned (dense
// matrices, a weight gradient's dy; sizes that are not multiples of 4
// fall back to scalar loads).
//
// SplitK, for a convolution's weight gradient only, is the number of
// chunks its long reduction (images × output positions) is split into, run
// in parallel and summed; 0 is bt's choice, enough chunks for the adapter
// to fill. A direct tile on a CPU adapter may take more, to keep a chunk
// within the loop limit (MaxLoopSteps).
type GemmTile struct {
	BM, BN, BK, TM, TN int
	Direct             bool
	Double             bool
	Pad                int
	Vec4               bool
	SplitK             int
}

func (t GemmTile) validate(d *Device) error {
	if t.SplitK < 0 || t.SplitK > int(d.Limits.MaxComputeWorkgroupsPerDimension) {
		return fmt.Errorf("gpu: GEMM tile %+v: SplitK must lie in [0, %d]", t, d.Limits.MaxComputeWorkgroupsPerDimension)
	}
	if t.Direct {
		if t.TM < 1 || t.TN < 1 || t.BM != t.TM || t.BN%t.TN != 0 {
			return fmt.Errorf("gpu: direct GEMM tile %+v: BM must equal TM and TN divide BN", t)
		}
		if t.Double || t.Pad != 0 || t.Vec4 {
			return fmt.Errorf("gpu: direct GEMM tile %+v: Double, Pad and Vec4 are staged tiles' (direct tiles stage nothing and step A by vec4 where aligned)", t)
		}
		if threads := t.BN / t.TN; threads > int(d.Limits.MaxComputeInvocationsPerWorkgroup) || threads > int(d.Limits.MaxComputeWorkgroupSizeX) {
			return fmt.Errorf("gpu: direct GEMM tile %+v needs %d threads per workgroup; %s allows %d", t, threads, d.Info.Name, d.Limits.MaxComputeWorkgroupSizeX)
		}
		return nil
	}
	st := t.staged(false, false)
	st.VecA, st.VecB = t.Vec4, t.Vec4
	if err := st.Validate(); err != nil {
		return fmt.Errorf("gpu: GEMM %w", err)
	}
	if threads := st.Threads(); threads > int(d.Limits.MaxComputeInvocationsPerWorkgroup) {
		return fmt.Errorf("gpu: GEMM tile %+v needs %d threads per workgroup; %s allows %d", t, threads, d.Info.Name, d.Limits.MaxComputeInvocationsPerWorkgroup)
	}
	if shared := st.SharedBytes(); shared > int(d.Limits.MaxComputeWorkgroupStorageSize) {
		return fmt.Errorf("gpu: GEMM tile %+v needs %d bytes of workgroup memory; %s allows %d", t, shared, d.Info.Name, d.Limits.MaxComputeWorkgroupStorageSize)
	}
	return nil
}

// validFor checks that the tile can serve products of the form: only a
// weight gradient splits its reduction, in chunks of whole steps of BK.
func (t GemmTile) validFor(f GemmForm) error {
	if t.SplitK != 0 && f != GemmConvWeight {
		return fmt.Errorf("gpu: GEMM tile %+v: only a convolution's weight gradient is split (SplitK), not a %s product", t, f)
	}
	if f == GemmConvWeight && t.BK < 1 {
		return fmt.Errorf("gpu: GEMM tile %+v: a weight gradient's chunks are whole steps of BK, which must be ≥ 1", t)
	}
	return nil
}

// staged is the shaders' form of a staged tile, with its staging order;
// vec4 loads are the caller's to set, where the operands allow them.
func (t GemmTile) staged(akFast, bkFast bool) shaders.Tile {
	return shaders.Tile{BM: t.BM, BN: t.BN, BK: t.BK, TM: t.TM, TN: t.TN, AKFast: akFast, BKFast: bkFast, Double: t.Double, Pad: t.Pad}
}

// GemmTileFor is the tile GEMM uses for an M×N product unless told
// otherwise. Each side of the tile is the smallest power of two that covers
// the matrix, between the per-thread block and a per-adapter maximum, so a
// 16-row product does not compute 240 rows of zeros. GPUs get 128×128 tiles
// of 8×8 register blocks; lavapipe runs a workgroup per CPU thread, and
// measured fastest with 256×256 tiles of 16×16 blocks (see BENCHMARKS.md).
func (d *Device) GemmTileFor(m, n int) GemmTile {
	maxB, t, bk := 128, 8, 16
	if d.IsCPU() {
		maxB, t, bk = 256, 16, 8
	}
	side := func(x int) int {
		b := t
		for b < x && b < maxB {
			b *= 2
		}
		return b
	}
	return GemmTile{BM: side(m), BN: side(n), BK: bk, TM: t, TN: t}
}

// GemmOp describes C = Alpha·op(A)·op(B) + Beta·C over Batch row-major
// matrices: op(A) is M×K (A is stored K×M when TransA), op(B) is K×N (B is
// stored N×K when TransB), C is M×N. Batch 0 means 1. A zero Tile means
// the device's tuned tile for the product's class (Device.SetTuning), or
// else Device.GemmTileFor(M, N).
type GemmOp struct {
	M, N, K, Batch int
	TransA, TransB bool
	Alpha, Beta    float32
	Tile           GemmTile
}

// Gemm records c = alpha·op(a)·op(b) + beta·c.
func Gemm(r *Recorder, c, a, b *Tensor, op GemmOp) error {
	batch := max(op.Batch, 1)
	if op.M < 1 || op.N < 1 || op.K < 1 {
		return fmt.Errorf("gpu: Gemm sizes M=%d N=%d K=%d must be ≥ 1", op.M, op.N, op.K)
	}
	if err := checkOperands(fmt.Sprintf("Gemm %dx%dx%d (batch %d)", op.M, op.N, op.K, batch),
		operand{"C", c, batch * op.M * op.N}, operand{"A", a, batch * op.M * op.K}, operand{"B", b, batch * op.K * op.N}); err != nil {
		return err
	}
	tile := op.Tile
	if err := tile.validFor(GemmDense); err != nil {
		return err
	}
	if tile == (GemmTile{}) {
		tile = r.d.tileFor(GemmCase{Class: ClassOf(GemmDense, op.TransA, op.TransB, op.M, op.N, op.K), Op: op},
			r.d.GemmTileFor(op.M, op.N))
	}
	return gemm(r, c, a, b, gemmCall{
		ops: shaders.GemmOperands{A: shaders.ADense, B: shaders.BDense, TransA: op.TransA, TransB: op.TransB},
		m:   op.M, n: op.N, k: op.K, batch: batch, sa: op.M * op.K, sb: op.K * op.N, sc: op.M * op.N,
		alpha: op.Alpha, beta: op.Beta, tile: tile,
	})
}

// operand is a tensor an op reads or writes, with the element count it needs.
type operand struct {
	name string
	t    *Tensor
	n    int
}

func checkOperands(op string, ts ...operand) error {
	for _, x := range ts {
		if err := x.t.check(); err != nil {
			return fmt.Errorf("gpu: %s, %s: %w", op, x.name, err)
		}
		if x.t.n != x.n {
			return fmt.Errorf("gpu: %s: %s is %v, needs %d elements", op, x.name, x.t.Shape, x.n)
		}
	}
	return nil
}

// gemmCall is one dispatch of a GEMM kernel: a plain product or a
// convolution in implicit-GEMM form.
type gemmCall struct {
	ops         shaders.GemmOperands
	m, n, k     int
	batch       int // workgroups in z: batch entries, or reduction chunks with SplitK
	sa, sb, sc  int // per-batch element strides
	alpha, beta float32
	conv        ConvShape
	kchunk      int
	tile        GemmTile
	// kstep 4 has a direct tile read A as vec4 along k, four steps at a
	// time: A's rows, its batch stride and every reduction chunk must then
	// start at multiples of 4. 0 means 1.
	kstep int
	bias  *Tensor // the epilogue's, bound fourth; nil without one
}

func gemm(r *Recorder, c, a, b *Tensor, g gemmCall) error {
	// The operands' storage types specialise the kernel; it computes in
	// f32 whatever they are.
	g.ops.CType, g.ops.AType, g.ops.BType = c.DType.spec(), a.DType.spec(), b.DType.spec()
	tile := g.tile
	if err := tile.validate(r.d); err != nil {
		return err
	}
	if span := g.k; tile.Direct {
		if g.kchunk > 0 {
			span = g.kchunk
		}
		if steps := (span + max(g.kstep, 1) - 1) / max(g.kstep, 1); steps > MaxLoopSteps {
			return fmt.Errorf("gpu: a reduction of %d steps per invocation exceeds the %d that %s runs in one loop; split it (Gemm: smaller K per call)", steps, MaxLoopSteps, r.d.Info.Name)
		}
	}
	var k *Kernel
	var err error
	if tile.Direct {
		k, err = r.d.Kernel("gemm_direct", shaders.GemmDirect{TM: tile.TM, TN: tile.TN, Threads: tile.BN / tile.TN,
			KStep: max(g.kstep, 1), GemmOperands: g.ops})
	} else {
		st := tile.staged(g.ops.AAlongK(), g.ops.BAlongK())
		st.VecA, st.VecB = tile.Vec4 && g.vecA(), tile.Vec4 && g.vecB()
		k, err = r.d.Kernel("gemm_staged", shaders.GemmStaged{Tile: st, GemmOperands: g.ops})
	}
	if err != nil {
		return err
	}
	grid := [3]int{(g.n + tile.BN - 1) / tile.BN, (g.m + tile.BM - 1) / tile.BM, g.batch}
	oh, ow := g.conv.Out()
	p := Params{}.U(g.m).U(g.n).U(g.k).U(g.sa).U(g.sb).U(g.sc).F(g.alpha).F(g.beta).
		U(g.conv.Cin).U(g.conv.H).U(g.conv.W).U(g.conv.Cout).U(oh).U(ow).U(g.kchunk)
	if g.bias != nil {
		return r.Dispatch(k, grid, p, c, a, b, g.bias)
	}
	return r.Dispatch(k, grid, p, c, a, b)
}

// vecA reports whether A can be read as vec4s along the direction it is
// stored contiguous in: along k (a row-major A, dy's positions) or m (a
// transposed A), that length, the batch stride and every reduction chunk
// multiples of 4, so that a vec4 never straddles a row, an image or a
// chunk's end.
func (g gemmCall) vecA() bool {
	switch g.ops.A {
	case shaders.ADense:
		along := g.k
		if g.ops.TransA {
			along = g.m
		}
		return along%4 == 0 && g.sa%4 == 0 && g.kchunk%4 == 0
	case shaders.ADy:
		oh, ow := g.conv.Out()
		return oh*ow%4 == 0 && g.kchunk%4 == 0
	}
	return false
}

// vecB is vecA for a dense B, contiguous along n, or k when transposed.
func (g gemmCall) vecB() bool {
	along := g.n
	if g.ops.TransB {
		along = g.k
	}
	return g.ops.B == shaders.BDense && along%4 == 0 && g.sb%4 == 0
}
