package gpu

import (
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bt-org/bt/shaders"
)

// Family is a family of kernels other than GEMM whose workgroup shape
// tuning chooses: each reads its data its own way, so each is tuned apart.
type Family string

const (
	// FamilyElementwise is elementwise.wgsl: y[i] = f(x[i], …), Dims [n, 1, 1].
	FamilyElementwise Family = "elementwise"
	// FamilyReduce is reduce.wgsl over x viewed as [a, b, c] (Dims).
	FamilyReduce Family = "reduce"
	// FamilyBatchNorm is BatchNorm's training forward over [N, C, HW].
	FamilyBatchNorm Family = "batchnorm"
	// FamilyBatchNormBackward is BatchNorm's backward over [N, C, HW].
	FamilyBatchNormBackward Family = "batchnorm-backward"
	// FamilyLossColumns is the Barlow Twins loss's per-column kernels
	// (btloss_norm and btloss_back) over [N, D, 1].
	FamilyLossColumns Family = "loss-columns"
	// FamilyLossSum is the loss's sum over C or the Gram matrices
	// (btloss_sum), Dims [length, 1, 1].
	FamilyLossSum Family = "loss-sum"
)

// Families lists the families in the order tuning reports them.
var Families = []Family{FamilyElementwise, FamilyReduce, FamilyBatchNorm, FamilyBatchNormBackward, FamilyLossColumns, FamilyLossSum}

// KernelClass is a class of a family's dispatches that share one tuned
// variant: the family and its three sizes (see the Family constants), each
// rounded up to a power of two as GemmClass's are.
type KernelClass struct {
	Family Family
	Dims   [3]int
}

// KernelClassOf is the class of a family's dispatch over sizes a, b, c.
func KernelClassOf(f Family, a, b, c int) KernelClass {
	return KernelClass{Family: f, Dims: [3]int{pow2(a), pow2(b), pow2(c)}}
}

// String is the class's text form, as the tuning cache stores it:
// "batchnorm/256x16x1024".
func (c KernelClass) String() string {
	return fmt.Sprintf("%s/%dx%dx%d", c.Family, c.Dims[0], c.Dims[1], c.Dims[2])
}

// MarshalText implements encoding.TextMarshaler.
func (c KernelClass) MarshalText() ([]byte, error) {
	if err := c.validate(); err != nil {
		return nil, err
	}
	return []byte(c.String()), nil
}

// UnmarshalText parses String's form.
func (c *KernelClass) UnmarshalText(b []byte) error {
	s := string(b)
	fam, dims, ok := strings.Cut(s, "/")
	parts := strings.Split(dims, "x")
	if !ok || len(parts) != 3 {
		return fmt.Errorf("gpu: kernel class %q: want FAMILY/AxBxC", s)
	}
	k := KernelClass{Family: Family(fam)}
	for i, p := range parts {
		v, err := strconv.Atoi(p)
		if err != nil {
			return fmt.Errorf("gpu: kernel class %q: %q is not a size", s, p)
		}
		k.Dims[i] = v
	}
	if err := k.validate(); err != nil {
		return err
	}
	*c = k
	return nil
}

func (c KernelClass) validate() error {
	if !slices.Contains(Families, c.Family) {
		return fmt.Errorf("gpu: kernel class %v: unknown family %q (one of %v)", c, c.Family, Families)
	}
	for _, x := range c.Dims {
		if x < 1 || x != pow2(x) {
			return fmt.Errorf("gpu: kernel class %v: sizes must be powers of two", c)
		}
	}
	return nil
}

// KernelVariant is how one of a family's kernels is built: the fields its
// family uses set, the others zero (see validate).
type KernelVariant struct {
	// Serial is BatchNorm's serial layout (batchnorm_serial.wgsl), that of
	// CPU adapters; otherwise BatchNorm runs in Columns workgroups.
	Serial bool `json:"serial,omitempty"`
	// Columns is the workgroup of a kernel that reduces columns: BatchNorm's
	// workgroup layout, reduce and the loss's per-column kernels.
	Columns shaders.Columns `json:"columns,omitzero"`
	// Threads is the workgroup of a one-dimensional kernel: elementwise
	// and the loss's sums.
	Threads shaders.Threads `json:"threads,omitzero"`
	// E is the elements an elementwise invocation computes.
	E int `json:"e,omitempty"`
}

func (v KernelVariant) String() string {
	var parts []string
	if v.Serial {
		parts = append(parts, "serial")
	}
	if v.Columns != (shaders.Columns{}) {
		parts = append(parts, fmt.Sprintf("%d×%d", v.Columns.BX, v.Columns.BY))
	}
	if v.Threads.WG != 0 {
		parts = append(parts, fmt.Sprintf("wg %d", v.Threads.WG))
	}
	if v.E != 0 {
		parts = append(parts, fmt.Sprintf("×%d per invocation", v.E))
	}
	return strings.Join(parts, ", ")
}

// validate checks that v sets the fields f uses, validly, and no others,
// and that its workgroup fits the device.
func (v KernelVariant) validate(d *Device, f Family) error {
	var err error
	none := func(set bool, what string) {
		if set {
			err = errors.Join(err, fmt.Errorf("gpu: %s variant %v: %s does not apply", f, v, what))
		}
	}
	switch f {
	case FamilyElementwise:
		none(v.Serial, "a serial layout")
		none(v.Columns != shaders.Columns{}, "columns")
		err = errors.Join(err, shaders.Elementwise{Expr: "0.0", Threads: v.Threads, E: v.E}.Validate())
	case FamilyLossSum:
		none(v.Serial, "a serial layout")
		none(v.Columns != shaders.Columns{}, "columns")
		none(v.E != 0, "elements per invocation")
		err = errors.Join(err, v.Threads.Validate(true))
	case FamilyBatchNorm, FamilyBatchNormBackward:
		none(v.Threads.WG != 0, "threads")
		none(v.E != 0, "elements per invocation")
		if v.Serial {
			none(v.Columns != shaders.Columns{}, "columns beside the serial layout")
		} else {
			err = errors.Join(err, v.Columns.Validate())
		}
	default:
		none(v.Serial, "a serial layout")
		none(v.Threads.WG != 0, "threads")
		none(v.E != 0, "elements per invocation")
		err = errors.Join(err, v.Columns.Validate())
	}
	if err != nil {
		return err
	}
	wg := max(v.Threads.WG, v.Columns.BX*v.Columns.BY)
	if wg > int(d.Limits.MaxComputeInvocationsPerWorkgroup) {
		return fmt.Errorf("gpu: %s variant %v: %d invocations exceed the adapter's %d", f, v, wg, d.Limits.MaxComputeInvocationsPerWorkgroup)
	}
	return nil
}

// KernelCase is a dispatch to time: its class, its sizes, and what else
// its family needs to run it again. It is what CollectKernels records.
type KernelCase struct {
	Class KernelClass
	Dims  [3]int // the sizes, before rounding
	// Affine and ReLU are a BatchNorm's γ and β and its fused ReLU; Norm
	// is whether the loss standardises the columns itself; Dot whether
	// its sum multiplies two Gram matrices (the fused path); Inputs is
	// the tensors an elementwise kernel reads.
	Affine, ReLU, Norm, Dot bool
	Inputs                  int
	// Builtin is the variant the dispatch takes without tuning.
	Builtin KernelVariant
}

// size is the product of the case's sizes.
func (c KernelCase) size() int { return c.Dims[0] * c.Dims[1] * c.Dims[2] }

// Variant is the variant a dispatch of case c takes: the tuned one for its
// class, or c.Builtin. While collecting, it records the case, the largest
// of each class. A caller that cannot run the tuned variant at c's sizes
// takes c.Builtin.
func (d *Device) Variant(c KernelCase) KernelVariant {
	if d.seenKernels != nil {
		if old, ok := d.seenKernels[c.Class]; !ok || c.size() > old.size() {
			d.seenKernels[c.Class] = c
		}
	}
	if v, ok := d.tuning.Kernels[c.Class]; ok {
		return v
	}
	return c.Builtin
}

// CollectKernels starts (on) or stops recording the dispatches of the
// families that take a Variant, one case per class, the largest seen;
// CollectedKernels returns them.
func (d *Device) CollectKernels(on bool) {
	if on {
		d.seenKernels = map[KernelClass]KernelCase{}
	} else {
		d.seenKernels = nil
	}
}

// CollectedKernels returns the cases recorded since CollectKernels(true), in
// the order of Families and then of their classes' text.
func (d *Device) CollectedKernels() []KernelCase {
	out := make([]KernelCase, 0, len(d.seenKernels))
	for _, c := range d.seenKernels {
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b KernelCase) int {
		if fa, fb := slices.Index(Families, a.Class.Family), slices.Index(Families, b.Class.Family); fa != fb {
			return fa - fb
		}
		return strings.Compare(a.Class.String(), b.Class.String())
	})
	return out
}

// ColumnVariants is the variants from shaders.ColumnChoices with BX among
// bxs and at least 64 invocations, as a column kernel's candidates.
func ColumnVariants(bxs ...int) []KernelVariant {
	var out []KernelVariant
	for _, c := range shaders.ColumnChoices() {
		if slices.Contains(bxs, c.BX) {
			out = append(out, KernelVariant{Columns: c})
		}
	}
	return out
}

// Candidates is builtin followed by those of vs that are valid for f on
// this device, differ from it, and pass ok.
func (d *Device) Candidates(f Family, builtin KernelVariant, vs []KernelVariant, ok func(KernelVariant) bool) []KernelVariant {
	out := []KernelVariant{builtin}
	for _, v := range vs {
		if v.validate(d, f) == nil && !slices.Contains(out, v) && (ok == nil || ok(v)) {
			out = append(out, v)
		}
	}
	return out
}

// TimeVariant records reps runs of run with case c's class taking variant
// v into one submission, after one untimed run (which compiles the
// kernels), and returns the wall-clock time of the timed submission,
// waiting included. run is the family's dispatches for c, on operands
// the caller made.
func (d *Device) TimeVariant(c KernelCase, v KernelVariant, reps int, run func(r *Recorder) error) (time.Duration, error) {
	if err := c.Class.validate(); err != nil {
		return 0, err
	}
	if err := v.validate(d, c.Class.Family); err != nil {
		return 0, err
	}
	saved := d.tuning
	d.tuning = Tuning{Gemm: saved.Gemm, Kernels: map[KernelClass]KernelVariant{c.Class: v}}
	defer func() { d.tuning = saved }()
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

// ElementwiseVariants is the elementwise candidates: workgroups of
// shaders.ThreadChoices, each invocation computing one of
// shaders.ElementChoices elements, builtin first.
func (d *Device) ElementwiseVariants(c KernelCase) []KernelVariant {
	var vs []KernelVariant
	for _, t := range shaders.ThreadChoices() {
		for _, e := range shaders.ElementChoices() {
			vs = append(vs, KernelVariant{Threads: t, E: e})
		}
	}
	return d.Candidates(FamilyElementwise, c.Builtin, vs, nil)
}

// ReduceVariants is the reduction candidates, builtin first: 8 to 64
// neighbouring columns per workgroup where they lie side by side (c = 1),
// otherwise one or two, each with 64 to 256 threads, those whose loops
// fit a CPU adapter at the case's sizes.
func (d *Device) ReduceVariants(c KernelCase) []KernelVariant {
	bxs := []int{1, 2}
	if c.Dims[2] == 1 {
		bxs = []int{8, 16, 32, 64}
	}
	return d.Candidates(FamilyReduce, c.Builtin, ColumnVariants(bxs...), func(v KernelVariant) bool {
		return d.reduceFits(v, c.Dims[0], c.Dims[2])
	})
}

// reduceFits reports whether a reduction's loops (two over a·c values for
// the mean and variance, split over BY threads) fit a CPU adapter's limit.
func (d *Device) reduceFits(v KernelVariant, a, c int) bool {
	return !d.IsCPU() || 2*((a*c+v.Columns.BY-1)/v.Columns.BY)+64 <= MaxLoopSteps
}

// TimeElementwise times an elementwise kernel of the case's sizes and
// inputs (Add, Axpy or Scale) with variant v; see TimeVariant.
func (d *Device) TimeElementwise(c KernelCase, v KernelVariant, reps int) (time.Duration, error) {
	n := c.Dims[0]
	ts, err := d.zeros(n, n, n)
	if err != nil {
		return 0, err
	}
	defer release(ts)
	return d.TimeVariant(c, v, reps, func(r *Recorder) error {
		switch {
		case c.Inputs >= 2:
			return Add(r, ts[0], ts[1], ts[2])
		case c.Inputs == 1:
			return Scale(r, ts[0], ts[1], 1)
		}
		return Fill(r, ts[0], 0)
	})
}

// TimeReduce times a column sum of the case's sizes with variant v; see
// TimeVariant.
func (d *Device) TimeReduce(c KernelCase, v KernelVariant, reps int) (time.Duration, error) {
	a, b, cc := c.Dims[0], c.Dims[1], c.Dims[2]
	ts, err := d.zeros(b, a*b*cc)
	if err != nil {
		return 0, err
	}
	defer release(ts)
	return d.TimeVariant(c, v, reps, func(r *Recorder) error { return Reduce(r, ts[0], ts[1], a, b, cc, Sum) })
}

// zeros makes tensors of the given lengths, filled with zeros: a kernel's
// time does not depend on its values.
func (d *Device) zeros(lens ...int) ([]*Tensor, error) {
	var ts []*Tensor
	for _, n := range lens {
		t, err := d.NewTensor(n)
		if err == nil {
			ts = append(ts, t)
			err = d.Run(func(r *Recorder) error { return Fill(r, t, 0) })
		}
		if err != nil {
			release(ts)
			return nil, err
		}
	}
	return ts, nil
}

func release(ts []*Tensor) {
	for _, t := range ts {
		t.Release()
	}
}
