package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// probeM, probeN and probeK are the quick check's GEMM: sizes a multiple of
// no tile, so that its edge guards run, and small enough to compile and run
// in well under a second on a CPU adapter.
const probeM, probeN, probeK = 17, 33, 65

// quickCheck compiles and runs a GEMM and a sum reduction (through
// subgroups where the device uses them) on a few thousand numbers and
// compares them with float64 references. It is what Open asks of an
// adapter before choosing it: an adapter whose shader compiler fails (Wine's
// DX12 through vkd3d stops at its HLSL compiler) or whose kernels compute
// wrongly is skipped, so that bt does not fail later, mid-run.
func (d *Device) quickCheck() error {
	rng := rand.New(rand.NewPCG(1, 2))
	fill := func(n int) []float32 {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64())
		}
		return v
	}
	av, bv := fill(probeM*probeK), fill(probeK*probeN)
	a, err := d.FromSlice(av, probeM, probeK)
	if err != nil {
		return err
	}
	defer a.Release()
	b, err := d.FromSlice(bv, probeK, probeN)
	if err != nil {
		return err
	}
	defer b.Release()
	c, err := d.FromSlice(nanSlice(probeM*probeN), probeM, probeN)
	if err != nil {
		return err
	}
	defer c.Release()
	sum, err := d.FromSlice(nanSlice(1), 1)
	if err != nil {
		return err
	}
	defer sum.Release()
	if err := d.Run(func(r *Recorder) error {
		if err := Gemm(r, c, a, b, GemmOp{M: probeM, N: probeN, K: probeK, Alpha: 1}); err != nil {
			return err
		}
		// Viewed as [1, 1, n], the sum runs through subgroups where the
		// device uses them.
		return Reduce(r, sum, a, 1, 1, probeM*probeK, Sum)
	}); err != nil {
		return err
	}
	got, err := c.Download()
	if err != nil {
		return err
	}
	for i := range probeM {
		for j := range probeN {
			var want float64
			for k := range probeK {
				want += float64(av[i*probeK+k]) * float64(bv[k*probeN+j])
			}
			if err := probeCompare(fmt.Sprintf("GEMM %dx%dx%d element (%d,%d)", probeM, probeN, probeK, i, j), got[i*probeN+j], want); err != nil {
				return err
			}
		}
	}
	s, err := sum.Download()
	if err != nil {
		return err
	}
	var want float64
	for _, v := range av {
		want += float64(v)
	}
	return probeCompare(fmt.Sprintf("sum of %d numbers", len(av)), s[0], want)
}

// probeCompare accepts got within a relative error of 1e-4 of want (the
// project's bound for reductions and GEMM in f32), measured against the
// larger of |want| and 1 so that a sum near zero is not held to an
// unattainable bound.
func probeCompare(what string, got float32, want float64) error {
	if e := math.Abs(float64(got)-want) / max(math.Abs(want), 1); !(e < 1e-4) {
		return fmt.Errorf("gpu: quick check: %s is %g, want %g", what, got, want)
	}
	return nil
}

func nanSlice(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}
