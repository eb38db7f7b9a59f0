package gpu_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/selfcheck"
	"github.com/bt-org/bt/shaders"
)

// withVariant runs fn with class c taking variant v on d, and the built-in
// choices again afterwards.
func withVariant(t *testing.T, d *gpu.Device, c gpu.KernelClass, v gpu.KernelVariant, fn func()) {
	t.Helper()
	if err := d.SetTuning(gpu.Tuning{Kernels: map[gpu.KernelClass]gpu.KernelVariant{c: v}}); err != nil {
		t.Fatal(err)
	}
	defer d.SetTuning(gpu.Tuning{})
	fn()
}

// elementwiseCase is the case an elementwise kernel over n elements records.
func elementwiseCase(n int) gpu.KernelCase {
	return gpu.KernelCase{Class: gpu.KernelClassOf(gpu.FamilyElementwise, n, 1, 1), Dims: [3]int{n, 1, 1},
		Builtin: gpu.KernelVariant{Threads: shaders.Threads{WG: 256}, E: 1}}
}

// TestElementwiseVariants checks every variant tuning may choose for an
// elementwise kernel, with every elementwise op, against float64, on
// lengths that are multiples of no workgroup, up to one past the largest
// workgroup's span (256 threads × 16 elements).
func TestElementwiseVariants(t *testing.T) {
	d := gputest.Device(t)
	for _, n := range []int{1, 3, 17, 65, 129, 4097} {
		c := elementwiseCase(n)
		vs := d.ElementwiseVariants(c)
		if want := len(shaders.ThreadChoices()) * len(shaders.ElementChoices()); len(vs) != want {
			t.Fatalf("%d elementwise variants, want %d: %v", len(vs), want, vs)
		}
		for _, v := range vs {
			t.Run(fmt.Sprintf("%d/%v", n, v), func(t *testing.T) {
				withVariant(t, d, c.Class, v, func() {
					for _, op := range selfcheck.ElementwiseOps() {
						gputest.Check(t, d, op.Check(n, nil, nil))
					}
				})
			})
		}
	}
}

// TestReduceVariants checks every variant tuning may choose for a
// reduction, with every reduction, against float64, on column, row and
// channel reductions of sizes that are multiples of no workgroup.
func TestReduceVariants(t *testing.T) {
	d := gputest.Device(t)
	for _, s := range [][3]int{{1, 1, 1}, {3, 17, 1}, {65, 129, 1}, {1, 3, 1000}, {1, 65, 17}, {17, 5, 9}} {
		a, b, cc := s[0], s[1], s[2]
		bx := 1
		if cc == 1 {
			bx = 32
		}
		c := gpu.KernelCase{Class: gpu.KernelClassOf(gpu.FamilyReduce, a, b, cc), Dims: s,
			Builtin: gpu.KernelVariant{Columns: shaders.Columns{BX: bx, BY: 256 / bx}}}
		vs := d.ReduceVariants(c)
		if len(vs) < 6 {
			t.Fatalf("%v: %d variants: %v", c.Class, len(vs), vs)
		}
		for _, v := range vs {
			t.Run(fmt.Sprintf("%dx%dx%d/%v", a, b, cc, v), func(t *testing.T) {
				withVariant(t, d, c.Class, v, func() {
					for _, op := range []gpu.ReduceOp{gpu.Sum, gpu.SumSq, gpu.Mean} {
						gputest.Check(t, d, selfcheck.ReduceCheck(op, a, b, cc, gpu.F32))
					}
					gputest.Check(t, d, selfcheck.MeanVarCheck(a, b, cc))
				})
			})
		}
	}
}

// TestKernelCollect checks that dispatches record their class while
// collecting, the largest case of each, and take the tuned variant of
// their class.
func TestKernelCollect(t *testing.T) {
	d := gputest.Device(t)
	d.CollectKernels(true)
	defer d.CollectKernels(false)
	for _, n := range []int{100, 70} {
		x, err := d.NewTensor(n)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Release()
		if err := d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, x, 1) }); err != nil {
			t.Fatal(err)
		}
	}
	got := d.CollectedKernels()
	if len(got) != 1 || got[0].Class != elementwiseCase(100).Class || got[0].Dims != [3]int{100, 1, 1} || got[0].Builtin != elementwiseCase(100).Builtin {
		t.Fatalf("collected %+v, want the one class of 100 elements, its largest case", got)
	}
	tuned := gpu.KernelVariant{Threads: shaders.Threads{WG: 64}, E: 4}
	if err := d.SetTuning(gpu.Tuning{Kernels: map[gpu.KernelClass]gpu.KernelVariant{got[0].Class: tuned}}); err != nil {
		t.Fatal(err)
	}
	defer d.SetTuning(gpu.Tuning{})
	if v := d.Variant(got[0]); v != tuned {
		t.Errorf("the tuned class takes %v, want %v", v, tuned)
	}
	if v := d.Variant(elementwiseCase(1000)); v != elementwiseCase(1000).Builtin {
		t.Errorf("another class takes %v, want its built-in variant", v)
	}
}

// TestKernelTuningRefused checks that SetTuning refuses a variant that
// does not fit its family or the device, and changes nothing then, and
// that classes round-trip through their text and refuse bad text.
func TestKernelTuningRefused(t *testing.T) {
	d := gputest.Device(t)
	ew := gpu.KernelClassOf(gpu.FamilyElementwise, 100, 1, 1)
	bn := gpu.KernelClassOf(gpu.FamilyBatchNorm, 17, 3, 49)
	good := gpu.KernelVariant{Threads: shaders.Threads{WG: 64}, E: 4}
	if err := d.SetTuning(gpu.Tuning{Kernels: map[gpu.KernelClass]gpu.KernelVariant{ew: good}}); err != nil {
		t.Fatal(err)
	}
	defer d.SetTuning(gpu.Tuning{})
	for name, tc := range map[string]struct {
		c    gpu.KernelClass
		v    gpu.KernelVariant
		want string
	}{
		"columns on elementwise": {ew, gpu.KernelVariant{Columns: shaders.Columns{BX: 32, BY: 8}, Threads: shaders.Threads{WG: 64}, E: 1}, "columns"},
		"no elements":            {ew, gpu.KernelVariant{Threads: shaders.Threads{WG: 64}}, "0 elements"},
		"serial with columns":    {bn, gpu.KernelVariant{Serial: true, Columns: shaders.Columns{BX: 1, BY: 256}}, "serial"},
		"too many threads":       {bn, gpu.KernelVariant{Columns: shaders.Columns{BX: 2, BY: 256}}, "BX·BY ≤ 256"},
		"not a power of two":     {gpu.KernelClass{Family: gpu.FamilyReduce, Dims: [3]int{3, 1, 1}}, gpu.KernelVariant{Columns: shaders.Columns{BX: 1, BY: 64}}, "powers of two"},
		"unknown family":         {gpu.KernelClass{Family: "conv", Dims: [3]int{1, 1, 1}}, good, "unknown family"},
	} {
		err := d.SetTuning(gpu.Tuning{Kernels: map[gpu.KernelClass]gpu.KernelVariant{tc.c: tc.v}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: SetTuning gave %v, want an error with %q", name, err, tc.want)
		}
		if got := d.Tuning().Kernels; len(got) != 1 || got[ew] != good {
			t.Errorf("%s: a refused tuning left %v", name, got)
		}
	}
	b, err := json.Marshal(map[gpu.KernelClass]gpu.KernelVariant{bn: {Serial: true}, ew: good})
	if err != nil {
		t.Fatal(err)
	}
	var back map[gpu.KernelClass]gpu.KernelVariant
	if err := json.Unmarshal(b, &back); err != nil || len(back) != 2 || back[bn] != (gpu.KernelVariant{Serial: true}) || back[ew] != good {
		t.Errorf("%s read back as %v, %v", b, back, err)
	}
	for _, bad := range []string{"batchnorm/17x4x64", "batchnorm/16x4", "softmax/1x1x1", "reduce/axbxc"} {
		var c gpu.KernelClass
		if err := c.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("class %q was accepted as %v", bad, c)
		}
	}
}
