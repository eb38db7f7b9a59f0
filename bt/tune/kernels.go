package tune

import (
	"fmt"
	"time"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
)

// KernelTimer times a case's dispatches with a variant, reps times in one
// submission. Families is one; tests use a fake.
type KernelTimer interface {
	TimeKernel(c gpu.KernelCase, v gpu.KernelVariant, reps int) (time.Duration, error)
}

// KernelChoice is the outcome of tuning one class of a family's dispatches.
type KernelChoice struct {
	Case    gpu.KernelCase
	Builtin gpu.KernelVariant
	Variant gpu.KernelVariant // the chosen one: Builtin unless a candidate beat it by the margin
	// BuiltinSeconds and Seconds are one run of the case's dispatches with
	// each variant, the fastest of the repeats.
	BuiltinSeconds, Seconds float64
	Tried                   int // candidates timed, the built-in one included
}

// Speedup is the built-in variant's time over the chosen one's.
func (c KernelChoice) Speedup() float64 { return c.BuiltinSeconds / c.Seconds }

func (c KernelChoice) String() string {
	return fmt.Sprintf("%-34v %9.3f ms ×%.2f of built-in (%d tried): %v", c.Case.Class, 1e3*c.Seconds, c.Speedup(), c.Tried, c.Variant)
}

// Kernels times the candidates of every case's class, as Gemms does for
// products, and returns a choice per case. candidates lists a case's
// variants, its built-in one first (as Families.Variants does).
func Kernels(tm KernelTimer, cases []gpu.KernelCase, candidates func(gpu.KernelCase) []gpu.KernelVariant, opts Options) ([]KernelChoice, error) {
	o := opts.withDefaults()
	out := make([]KernelChoice, 0, len(cases))
	err := search(o, cases, func(c gpu.KernelCase) (fmt.Stringer, []gpu.KernelVariant) { return c.Class, candidates(c) }, tm.TimeKernel,
		func(c gpu.KernelCase, r result[gpu.KernelVariant]) {
			ch := KernelChoice{Case: c, Builtin: r.builtin, Variant: r.chosen, BuiltinSeconds: r.builtinSec, Seconds: r.sec, Tried: r.tried}
			if o.Log != nil {
				fmt.Fprintln(o.Log, ch)
			}
			out = append(out, ch)
		})
	return out, err
}

// Families lists and times the variants of every family on a device, each
// through the package its kernels live in: gpu (elementwise, reduce),
// layers (BatchNorm) and loss (the Barlow Twins loss).
type Families struct{ D *gpu.Device }

// Variants is case c's candidates, its built-in variant first.
func (f Families) Variants(c gpu.KernelCase) []gpu.KernelVariant {
	switch c.Class.Family {
	case gpu.FamilyElementwise:
		return f.D.ElementwiseVariants(c)
	case gpu.FamilyReduce:
		return f.D.ReduceVariants(c)
	case gpu.FamilyBatchNorm, gpu.FamilyBatchNormBackward:
		return layers.BatchNormVariants(f.D, c)
	case gpu.FamilyLossColumns:
		return loss.ColumnVariants(f.D, c)
	case gpu.FamilyLossSum:
		return loss.SumVariants(f.D, c)
	}
	return nil
}

// TimeKernel implements KernelTimer.
func (f Families) TimeKernel(c gpu.KernelCase, v gpu.KernelVariant, reps int) (time.Duration, error) {
	switch c.Class.Family {
	case gpu.FamilyElementwise:
		return f.D.TimeElementwise(c, v, reps)
	case gpu.FamilyReduce:
		return f.D.TimeReduce(c, v, reps)
	case gpu.FamilyBatchNorm, gpu.FamilyBatchNormBackward:
		return layers.TimeBatchNorm(f.D, c, v, reps)
	case gpu.FamilyLossColumns, gpu.FamilyLossSum:
		return loss.TimeVariant(f.D, c, v, reps)
	}
	return 0, fmt.Errorf("tune: no kernels of family %q", c.Class.Family)
}
