package gpu

import (
	"fmt"
	"math/bits"
	"slices"
	"strconv"
	"strings"
	"time"
)

// GemmForm is a kind of product that GEMM tiles are chosen for: a dense
// product, or one of the three passes of a convolution in implicit-GEMM
// form. Each reads its operands differently, so each is tuned apart.
type GemmForm string

const (
	GemmDense       GemmForm = "dense"
	GemmConvForward GemmForm = "conv-forward"
	GemmConvData    GemmForm = "conv-data"
	GemmConvWeight  GemmForm = "conv-weight"
)

// GemmForms lists the forms in the order tuning reports them.
var GemmForms = []GemmForm{GemmDense, GemmConvForward, GemmConvData, GemmConvWeight}

func (f GemmForm) valid() bool { return slices.Contains(GemmForms, f) }

// GemmClass is a class of products that share one tuned tile: their form,
// a dense product's transposes, and M, N and K each rounded up to a power of
// two (as Burn's autotune keys its matmuls), so that a run's products fall
// into a few classes and a choice carries over to nearby shapes.
type GemmClass struct {
	Form           GemmForm
	TransA, TransB bool
	M, N, K        int
}

// ClassOf is the class of a form's M×N×K product.
func ClassOf(form GemmForm, transA, transB bool, m, n, k int) GemmClass {
	return GemmClass{Form: form, TransA: transA, TransB: transB, M: pow2(m), N: pow2(n), K: pow2(k)}
}

// pow2 is the smallest power of two ≥ x (1 for x ≤ 1).
func pow2(x int) int {
	if x <= 1 {
		return 1
	}
	return 1 << bits.Len(uint(x-1))
}

// String is the class's text form, as the tuning cache stores it:
// "dense-ta/m128-n64-k1024".
func (c GemmClass) String() string {
	f := string(c.Form)
	if c.TransA {
		f += "-ta"
	}
	if c.TransB {
		f += "-tb"
	}
	return fmt.Sprintf("%s/m%d-n%d-k%d", f, c.M, c.N, c.K)
}

// MarshalText implements encoding.TextMarshaler.
func (c GemmClass) MarshalText() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return []byte(c.String()), nil
}

// UnmarshalText parses String's form.
func (c *GemmClass) UnmarshalText(b []byte) error {
	s := string(b)
	form, dims, ok := strings.Cut(s, "/")
	if !ok {
		return fmt.Errorf("gpu: GEMM class %q: want FORM/mM-nN-kK", s)
	}
	var g GemmClass
	form, g.TransB = strings.CutSuffix(form, "-tb")
	form, g.TransA = strings.CutSuffix(form, "-ta")
	g.Form = GemmForm(form)
	parts := strings.Split(dims, "-")
	if len(parts) != 3 {
		return fmt.Errorf("gpu: GEMM class %q: want FORM/mM-nN-kK", s)
	}
	for i, p := range []*int{&g.M, &g.N, &g.K} {
		v, err := strconv.Atoi(strings.TrimPrefix(parts[i], "mnk"[i:i+1]))
		if err != nil || !strings.HasPrefix(parts[i], "mnk"[i:i+1]) {
			return fmt.Errorf("gpu: GEMM class %q: %q is not %c and a size", s, parts[i], "mnk"[i])
		}
		*p = v
	}
	if err := g.validate(); err != nil {
		return err
	}
	*c = g
	return nil
}

func (c GemmClass) validate() error {
	if !c.Form.valid() {
		return fmt.Errorf("gpu: GEMM class %v: unknown form %q (one of %v)", c, c.Form, GemmForms)
	}
	if c.Form != GemmDense && (c.TransA || c.TransB) {
		return fmt.Errorf("gpu: GEMM class %v: only dense products are transposed", c)
	}
	for _, x := range []int{c.M, c.N, c.K} {
		if x < 1 || x != pow2(x) {
			return fmt.Errorf("gpu: GEMM class %v: sizes must be powers of two", c)
		}
	}
	return nil
}

// Tuning is the tiles chosen for classes of products on one device, and
// the variants chosen for classes of the other families' dispatches: a
// dispatch whose class has a choice takes it, any other bt's built-in one.
// A tile given in a GemmOp is used as given.
type Tuning struct {
	Gemm    map[GemmClass]GemmTile
	Kernels map[KernelClass]KernelVariant
}

// SetTuning makes the device take t's tiles and variants, after checking
// every class and that every choice can run on this device; on an error
// nothing changes.
func (d *Device) SetTuning(t Tuning) error {
	g := make(map[GemmClass]GemmTile, len(t.Gemm))
	for c, tile := range t.Gemm {
		if err := c.validate(); err != nil {
			return err
		}
		if err := firstErr(tile.validate(d), tile.validFor(c.Form)); err != nil {
			return fmt.Errorf("gpu: tuned tile for %v: %w", c, err)
		}
		g[c] = tile
	}
	k := make(map[KernelClass]KernelVariant, len(t.Kernels))
	for c, v := range t.Kernels {
		if err := c.validate(); err != nil {
			return err
		}
		if err := v.validate(d, c.Family); err != nil {
			return fmt.Errorf("gpu: tuned variant for %v: %w", c, err)
		}
		k[c] = v
	}
	d.tuning = Tuning{Gemm: g, Kernels: k}
	return nil
}

// Tuning returns the tiles and variants the device takes; the maps are
// copies.
func (d *Device) Tuning() Tuning {
	g := make(map[GemmClass]GemmTile, len(d.tuning.Gemm))
	for c, t := range d.tuning.Gemm {
		g[c] = t
	}
	k := make(map[KernelClass]KernelVariant, len(d.tuning.Kernels))
	for c, v := range d.tuning.Kernels {
		k[c] = v
	}
	return Tuning{Gemm: g, Kernels: k}
}

// tileFor is the tile for the case's product: the tuned one for its class,
// or builtin. While collecting, it records the case.
func (d *Device) tileFor(c GemmCase, builtin GemmTile) GemmTile {
	if d.seen != nil {
		if old, ok := d.seen[c.Class]; !ok || c.Flops() > old.Flops() {
			d.seen[c.Class] = c
		}
	}
	if t, ok := d.tuning.Gemm[c.Class]; ok {
		return t
	}
	return builtin
}

// DenseTile is the tile a dense product takes without one given in op: the
// tuned one for its class, or else GemmTileFor's.
func (d *Device) DenseTile(op GemmOp) GemmTile {
	if t, ok := d.tuning.Gemm[ClassOf(GemmDense, op.TransA, op.TransB, op.M, op.N, op.K)]; ok {
		return t
	}
	return d.GemmTileFor(op.M, op.N)
}

// GemmCase is a product to time: its form, sizes, and for a convolution
// pass the convolution. It is what CollectGemms records of a run's products.
type GemmCase struct {
	Class GemmClass
	// Op is a dense product; Conv a convolution whose pass Class.Form names.
	Op   GemmOp
	Conv ConvShape
}

// Flops is the case's multiply-adds times two.
func (c GemmCase) Flops() float64 {
	if c.Class.Form == GemmDense {
		return 2 * float64(max(c.Op.Batch, 1)) * float64(c.Op.M) * float64(c.Op.N) * float64(c.Op.K)
	}
	oh, ow := c.Conv.Out()
	s := c.Conv
	return 2 * float64(s.N) * float64(s.Cout) * float64(oh*ow) * float64(s.Cin*s.KH*s.KW)
}

// CollectGemms starts (on) or stops recording the products that kernels
// are recorded for, one case per class, the largest seen; CollectedGemms
// returns them. Tuning collects a training step's products this way.
func (d *Device) CollectGemms(on bool) {
	if on {
		d.seen = map[GemmClass]GemmCase{}
	} else {
		d.seen = nil
	}
}

// CollectedGemms returns the cases recorded since CollectGemms(true), in the
// order of GemmForms and then of their classes' text.
func (d *Device) CollectedGemms() []GemmCase {
	out := make([]GemmCase, 0, len(d.seen))
	for _, c := range d.seen {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b GemmCase) int {
		if fa, fb := slices.Index(GemmForms, a.Class.Form), slices.Index(GemmForms, b.Class.Form); fa != fb {
			return fa - fb
		}
		return strings.Compare(a.Class.String(), b.Class.String())
	})
	return out
}

// GemmTiles is the tiles worth timing for a class on this device, bt's
// built-in tile first; then for a weight gradient splits of its reduction
// with the built-in tile (no new kernel to compile), the built-in tile's
// variants (vec4 loads, double-buffered, padded), stagedTiles,
// variantTiles and directTiles, with directTiles before the staged ones on
// CPU adapters, where they run fastest, so that a budget cut short still
// tries them; each valid on the device and no larger than the class needs
// by more than one step of each side.
func (d *Device) GemmTiles(c GemmClass) []GemmTile {
	builtin := d.builtinTile(c)
	out := []GemmTile{builtin}
	fits := func(b, x int) bool { return b <= max(2*x, 32) }
	var cands []GemmTile
	if c.Form == GemmConvWeight {
		for _, n := range splitCounts {
			t := builtin
			t.SplitK = n
			// Chunks of at least a step, partial products of at most 2²⁴ floats.
			if n*t.BK <= c.K && n*c.M*c.N <= 1<<24 {
				cands = append(cands, t)
			}
		}
	}
	var variants []GemmTile
	if !builtin.Direct {
		for _, v := range []GemmTile{{Vec4: true}, {Vec4: true, Double: true}, {Vec4: true, Double: true, Pad: 4}} {
			v.BM, v.BN, v.BK, v.TM, v.TN = builtin.BM, builtin.BN, builtin.BK, builtin.TM, builtin.TN
			variants = append(variants, v)
		}
	}
	if d.IsCPU() {
		cands = append(append(append(append(cands, directTiles...), variants...), stagedTiles...), variantTiles...)
	} else {
		cands = append(append(append(append(cands, variants...), stagedTiles...), variantTiles...), directTiles...)
	}
	for _, t := range cands {
		if t.validate(d) == nil && t.validFor(c.Form) == nil && !slices.Contains(out, t) && fits(t.BM, c.M) && fits(t.BN, c.N) {
			out = append(out, t)
		}
	}
	return out
}

// splitCounts are the numbers of chunks tuning tries for a weight
// gradient's reduction with its built-in tile.
var splitCounts = []int{4, 16, 64, 256}

// stagedTiles are the staged tiles tuning tries: workgroup tiles of 32 to
// 128 a side, 4×4 or 8×8 per thread, the reduction staged 8 to 32 deep,
// and 64 to 256 threads, shapes that WGSL matmuls run well on GPUs of
// SIMD widths 8 to 64.
var stagedTiles = []GemmTile{
	{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8},
	{BM: 128, BN: 128, BK: 32, TM: 8, TN: 8},
	{BM: 128, BN: 64, BK: 16, TM: 8, TN: 8},
	{BM: 64, BN: 128, BK: 16, TM: 8, TN: 8},
	{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4},
	{BM: 64, BN: 64, BK: 32, TM: 8, TN: 8},
	{BM: 64, BN: 64, BK: 8, TM: 4, TN: 8},
	{BM: 32, BN: 64, BK: 16, TM: 4, TN: 4},
	{BM: 32, BN: 32, BK: 8, TM: 4, TN: 4},
	{BM: 32, BN: 32, BK: 32, TM: 4, TN: 4},
}

// variantTiles are staged tiles with the variants GPUs differ on: vec4
// loads, then double-buffered workgroup arrays (one barrier a step), then
// rows padded against bank conflicts, on a large, a middle and a small
// tile.
var variantTiles = []GemmTile{
	{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, Vec4: true},
	{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, Vec4: true, Double: true},
	{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, Vec4: true, Double: true, Pad: 4},
	{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, Vec4: true},
	{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, Vec4: true, Double: true},
	{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, Vec4: true, Double: true, Pad: 4},
	{BM: 64, BN: 64, BK: 32, TM: 8, TN: 8, Vec4: true, Double: true},
	{BM: 32, BN: 32, BK: 8, TM: 4, TN: 4, Vec4: true, Double: true, Pad: 4},
}

// directTiles are the direct tiles tuning tries, for CPU adapters above
// all: one row of 8 to 32 threads, 8 or 16 rows and 4 to 16 columns each.
var directTiles = []GemmTile{
	{BM: 16, TM: 16, BN: 64, TN: 8, BK: 8, Direct: true},
	{BM: 16, TM: 16, BN: 128, TN: 16, BK: 8, Direct: true},
	{BM: 16, TM: 16, BN: 32, TN: 4, BK: 8, Direct: true},
	{BM: 8, TM: 8, BN: 64, TN: 8, BK: 8, Direct: true},
	{BM: 8, TM: 8, BN: 128, TN: 4, BK: 8, Direct: true},
}

// builtinTile is the tile a product of class c takes without tuning.
func (d *Device) builtinTile(c GemmClass) GemmTile {
	if c.Form == GemmDense {
		return d.GemmTileFor(c.M, c.N)
	}
	return d.convTileBuiltin(c.M, c.N, ConvTilesAuto)
}

// TimeGemm records reps runs of the case's product with the given tile
// into one submission, after one untimed run (which compiles the kernel),
// and returns the wall-clock time of the timed submission, waiting
// included. The operands are zeros: a product's time does not depend on
// its values.
func (d *Device) TimeGemm(c GemmCase, tile GemmTile, reps int) (time.Duration, error) {
	if err := c.Class.validate(); err != nil {
		return 0, err
	}
	if err := firstErr(tile.validate(d), tile.validFor(c.Class.Form)); err != nil {
		return 0, err
	}
	saved := d.tuning
	d.tuning = Tuning{Gemm: map[GemmClass]GemmTile{c.Class: tile}, Kernels: saved.Kernels}
	defer func() { d.tuning = saved }()
	c.Op.Tile = tile
	var ts []*Tensor
	defer func() {
		for _, t := range ts {
			t.Release()
		}
	}()
	tensor := func(n int) (*Tensor, error) {
		t, err := d.NewTensor(n)
		if err == nil {
			ts = append(ts, t)
			err = d.Run(func(r *Recorder) error { return Fill(r, t, 0) })
		}
		return t, err
	}
	var run func(r *Recorder) error
	switch c.Class.Form {
	case GemmDense:
		op := c.Op
		b := max(op.Batch, 1)
		cc, err1 := tensor(b * op.M * op.N)
		a, err2 := tensor(b * op.M * op.K)
		bb, err3 := tensor(b * op.K * op.N)
		if err := firstErr(err1, err2, err3); err != nil {
			return 0, err
		}
		run = func(r *Recorder) error { return Gemm(r, cc, a, bb, op) }
	default:
		s := c.Conv
		if err := s.validate(); err != nil {
			return 0, err
		}
		oh, ow := s.Out()
		x, err1 := tensor(s.N * s.Cin * s.H * s.W)
		w, err2 := tensor(s.Cout * s.Cin * s.KH * s.KW)
		y, err3 := tensor(s.N * s.Cout * oh * ow)
		if err := firstErr(err1, err2, err3); err != nil {
			return 0, err
		}
		switch c.Class.Form {
		case GemmConvForward:
			run = func(r *Recorder) error { return ConvForward(r, y, x, w, s) }
		case GemmConvData:
			run = func(r *Recorder) error { return ConvBackwardData(r, x, y, w, s) }
		case GemmConvWeight:
			run = func(r *Recorder) error { return ConvBackwardWeight(r, w, y, x, s) }
		}
	}
	if err := d.Run(run); err != nil {
		return 0, err
	}
	d.Sync()
	start := time.Now()
	err := d.Run(func(r *Recorder) error {
		for range max(reps, 1) {
			if err := run(r); err != nil {
				return err
			}
		}
		return nil
	})
	d.Sync()
	return time.Since(start), err
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}
