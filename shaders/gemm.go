package shaders

import (
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// Specialisation is what a kernel's template is executed with: one of the
// typed specs here or in specs.go, whose fields the template reads by name
// and whose Validate rejects values the kernel cannot run with.
type Specialisation interface {
	// Key is a stable text form, used to cache compiled kernels.
	Key() string
	// Validate reports values the kernel cannot be specialised with.
	Validate() error
}

// AOperand is how a GEMM reads its A operand.
type AOperand string

// BOperand is how a GEMM reads its B operand.
type BOperand string

// The operand modes: dense matrices, or a convolution's tensors gathered on
// the fly (implicit GEMM; see gemm_staged.wgsl).
const (
	ADense AOperand = "dense" // stored M×K, or K×M with TransA
	ADy    AOperand = "dy"    // a weight gradient's dy [N, Cout, OH·OW] as Cout × N·OH·OW

	BDense   BOperand = "dense"    // stored K×N, or N×K with TransB
	BIm2col  BOperand = "im2col"   // forward: x's patches, Cin·KH·KW × OH·OW
	BIm2colT BOperand = "im2col_t" // weight gradient: x's patches, N·OH·OW × Cin·KH·KW
	BDyCol   BOperand = "dy_col"   // data gradient: one phase's dy gather, Cout·TY·TX × pixels
)

// Conv is the geometry of a convolution that a GEMM gathers its operands
// from; constants in the kernel, so that its index arithmetic divides by
// constants.
type Conv struct {
	KH, KW, Stride, Pad int
}

// Phase is the input pixels (PY + Stride·i, PX + Stride·j) of a strided
// convolution's data gradient, read through its TY×TX taps, pixel (i, j)
// reaching output (i + QY − a, j + QX − b) through tap (a, b).
type Phase struct {
	PY, PX, TY, TX, QY, QX int
}

// Elem is an element type of a tensor in device memory: f32, or f16 for
// storage only, which kernels convert to f32 on load and back on store
// (mixed precision). The zero value is f32.
type Elem string

const (
	F32 Elem = "f32"
	F16 Elem = "f16"
)

// WGSL is the type's name in WGSL.
func (e Elem) WGSL() string {
	if e == "" {
		return string(F32)
	}
	return string(e)
}

func (e Elem) valid() bool { return e == "" || e == F32 || e == F16 }

// Epilogue is what a convolution's forward GEMM does to each output before
// storing it: nothing, or adding a per-output-channel bias (binding 4, f32)
// and optionally a ReLU after it. An inference network whose BatchNorm is
// folded into its convolutions (models.Fold) then writes each unit's
// output in the GEMM's own store, without a pass over it.
type Epilogue string

const (
	EpilogueNone     Epilogue = ""
	EpilogueBias     Epilogue = "bias"      // c = alpha·ab + beta·c + bias[row]
	EpilogueBiasReLU Epilogue = "bias_relu" // c = max(alpha·ab + beta·c + bias[row], 0)
)

// GemmOperands is what a GEMM kernel computes, shared by its staged and
// direct forms: which operands it reads and how, and how C is laid out.
type GemmOperands struct {
	// CType, AType and BType are the operands' element types in memory;
	// the products and sums are f32 whatever they are.
	CType, AType, BType Elem
	A                   AOperand
	B                   BOperand
	TransA, TransB      bool // dense operands stored transposed
	// SplitK makes workgroup z a chunk of p.kchunk of the reduction, each
	// writing its own slice of C, instead of a batch entry.
	SplitK bool
	// Flat lays every image's output positions side by side as the
	// columns of one product, instead of one product per image in z
	// (forward and data gradient).
	Flat     bool
	Conv     Conv     // for every B but dense
	Phase    Phase    // for B = dy_col
	Epilogue Epilogue // for B = im2col
}

// Half reports whether any operand is stored as f16, which the kernel
// must then enable.
func (o GemmOperands) Half() bool { return o.CType == F16 || o.AType == F16 || o.BType == F16 }

// IsConv reports whether the operands are gathered from a convolution.
func (o GemmOperands) IsConv() bool { return o.B != BDense }

// AAlongK reports whether op(A) is contiguous along k, as its storage is;
// a staged tile loads it in that order (Tile.AKFast) to coalesce.
func (o GemmOperands) AAlongK() bool { return o.A == ADy || !o.TransA }

// BAlongK reports whether op(B) is contiguous along k.
func (o GemmOperands) BAlongK() bool { return o.B == BIm2colT || o.B == BDense && o.TransB }

// Validate checks that the modes exist, go together, and have the
// geometry they need.
func (o GemmOperands) Validate() error {
	if !o.CType.valid() || !o.AType.valid() || !o.BType.valid() {
		return fmt.Errorf("GEMM %+v: element types must be %s or %s", o, F32, F16)
	}
	switch o.Epilogue {
	case EpilogueNone:
	case EpilogueBias, EpilogueBiasReLU:
		if o.B != BIm2col {
			return fmt.Errorf("GEMM %+v: only a convolution's forward has an epilogue", o)
		}
	default:
		return fmt.Errorf("GEMM %+v: unknown epilogue %q", o, o.Epilogue)
	}
	switch o.B {
	case BDense:
		if o.A != ADense || o.SplitK || o.Flat || o.Conv != (Conv{}) || o.Phase != (Phase{}) {
			return fmt.Errorf("a dense GEMM %+v reads a dense A, unsplit and unflattened, without convolution geometry", o)
		}
		return nil
	case BIm2col, BDyCol:
		if o.A != ADense || o.SplitK {
			return fmt.Errorf("GEMM %+v: a convolution's forward and data gradient read dense weights and are not split", o)
		}
	case BIm2colT:
		if o.A != ADy || !o.SplitK || o.Flat {
			return fmt.Errorf("GEMM %+v: a weight gradient reads dy as A and splits its reduction", o)
		}
	default:
		return fmt.Errorf("GEMM %+v: unknown B operand %q", o, o.B)
	}
	if o.TransA || o.TransB {
		return fmt.Errorf("GEMM %+v: only dense operands are transposed", o)
	}
	if c := o.Conv; c.KH < 1 || c.KW < 1 || c.Stride < 1 || c.Pad < 0 {
		return fmt.Errorf("GEMM %+v: convolution sizes must be ≥ 1 and padding ≥ 0", o)
	}
	ph := o.Phase
	if o.B != BDyCol {
		if ph != (Phase{}) {
			return fmt.Errorf("GEMM %+v: only a data gradient has a phase", o)
		}
		return nil
	}
	if ph.PY < 0 || ph.PX < 0 || ph.PY >= o.Conv.Stride || ph.PX >= o.Conv.Stride || ph.TY < 1 || ph.TX < 1 || ph.QY < 0 || ph.QX < 0 {
		return fmt.Errorf("GEMM %+v: phase offsets must lie in [0, stride), its taps be ≥ 1 and its output shifts ≥ 0", o)
	}
	return nil
}

// Tile is a staged tile loop (lib.tmpl's tile_mma): each workgroup computes
// a BM×BN tile in steps of BK staged in workgroup memory, each thread a
// TM×TN block in vec4 registers. AKFast and BKFast order the staging loads
// along k (for operands contiguous along k), so that neighbouring threads
// read neighbouring addresses; any order gives the same result.
//
// The other fields are the variants that GPUs differ on, each a switch of
// the same template:
//   - Double stages step k+1 in a second half of the workgroup arrays
//     before computing step k from the first, so a step takes one barrier
//     instead of two and the next step's loads are in flight while it
//     computes (twice the workgroup memory).
//   - Pad adds floats to each k-row of the workgroup arrays (a multiple of
//     4, keeping the rows vec4-aligned): k-fast staging has neighbouring
//     threads write one row apart, which a row of a power-of-two length
//     puts in one memory bank.
//   - VecA and VecB load A and B from device memory as vec4s along the
//     direction they are contiguous in (k where AKFast and BKFast, else m
//     and n). The caller sets them only where that direction's length, the
//     batch stride and every reduction chunk are multiples of 4, so a vec4
//     lies in range whole or not at all; they need BK a multiple of 4.
type Tile struct {
	BM, BN, BK, TM, TN int
	AKFast, BKFast     bool
	Double             bool
	Pad                int
	VecA, VecB         bool
}

// Threads is the number of invocations in a workgroup.
func (t Tile) Threads() int { return (t.BM / t.TM) * (t.BN / t.TN) }

// RowA and RowB are the floats one k-row of A's and B's workgroup array
// holds: the tile's side and the padding.
func (t Tile) RowA() int { return t.BM + t.Pad }
func (t Tile) RowB() int { return t.BN + t.Pad }

// Halves is how many steps of BK the workgroup arrays hold: 2 when
// double-buffered.
func (t Tile) Halves() int {
	if t.Double {
		return 2
	}
	return 1
}

// SharedBytes is the workgroup memory the tile's arrays take.
func (t Tile) SharedBytes() int { return 4 * t.Halves() * t.BK * (t.RowA() + t.RowB()) }

// Key implements Specialisation.
func (t Tile) Key() string { return structKey(t) }

// Validate checks the tile's geometry: the register blocks are whole vec4s
// and tile the workgroup's tile, the padding keeps rows of whole vec4s,
// and vec4 loads cover whole steps.
func (t Tile) Validate() error {
	if t.TM < 4 || t.TN < 4 || t.TM%4 != 0 || t.TN%4 != 0 || t.BM%t.TM != 0 || t.BN%t.TN != 0 || t.BK < 1 {
		return fmt.Errorf("tile %+v: TM and TN must be multiples of 4 dividing BM and BN, and BK ≥ 1", t)
	}
	if t.Pad < 0 || t.Pad%4 != 0 {
		return fmt.Errorf("tile %+v: padding must be a multiple of 4 floats ≥ 0", t)
	}
	if (t.VecA || t.VecB) && t.BK%4 != 0 {
		return fmt.Errorf("tile %+v: vec4 loads need BK a multiple of 4", t)
	}
	return nil
}

// GemmStaged specialises gemm_staged.wgsl, the kernel for GPUs.
type GemmStaged struct {
	Tile
	GemmOperands
}

// Key implements Specialisation.
func (s GemmStaged) Key() string { return structKey(s) }

// Validate checks the tile, that vec4 loads of B read a stored B (A is
// stored in every mode), and the operands.
func (s GemmStaged) Validate() error {
	if err := s.Tile.Validate(); err != nil {
		return err
	}
	if s.VecB && s.B != BDense {
		return fmt.Errorf("staged GEMM %+v: vec4 loads of B need it dense", s)
	}
	if s.Flat && s.B != BIm2col && s.B != BDyCol {
		return fmt.Errorf("staged GEMM %+v: only a convolution's forward and data gradient are flattened", s)
	}
	return s.GemmOperands.Validate()
}

// GemmDirect specialises gemm_direct.wgsl, the kernel for CPU adapters: a
// workgroup is one row of Threads invocations over TM rows of C, each
// keeping TM×TN accumulators for TN columns Threads apart, with nothing
// staged. KStep 4 reads A as vec4 along k, four steps at a time.
type GemmDirect struct {
	TM, TN, Threads int
	KStep           int
	GemmOperands
}

// Key implements Specialisation.
func (s GemmDirect) Key() string { return structKey(s) }

// Validate checks the tile, the step and the operands.
func (s GemmDirect) Validate() error {
	if s.TM < 1 || s.TN < 1 || s.Threads < 1 {
		return fmt.Errorf("direct GEMM %+v: TM, TN and Threads must be ≥ 1", s)
	}
	switch {
	case s.KStep == 4 && s.TransA:
		return fmt.Errorf("direct GEMM %+v: vec4 steps read A along k, which a transposed A is not", s)
	case s.KStep != 1 && s.KStep != 4:
		return fmt.Errorf("direct GEMM %+v: KStep must be 1 or 4", s)
	}
	if s.Flat && s.B != BIm2col && s.B != BDyCol {
		return fmt.Errorf("direct GEMM %+v: only a convolution's forward and data gradient are flattened", s)
	}
	return s.GemmOperands.Validate()
}

// structKey is a typed spec's Key: key=value sorted by key, with embedded structs' fields flattened and zero values left out, so
// that names stay short and profiles can pick out the operand modes.
func structKey(spec any) string {
	var kvs []string
	var walk func(v reflect.Value)
	walk = func(v reflect.Value) {
		for i := range v.NumField() {
			f, fv := v.Type().Field(i), v.Field(i)
			switch {
			case f.Anonymous:
				walk(fv)
			case !fv.IsZero():
				kvs = append(kvs, fmt.Sprintf("%s=%+v", f.Name, fv.Interface()))
			}
		}
	}
	walk(reflect.ValueOf(spec))
	sort.Strings(kvs)
	return strings.Join(kvs, ",")
}
