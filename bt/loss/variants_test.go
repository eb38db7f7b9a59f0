package loss

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// TestLossVariants checks every workgroup tuning may choose for the
// loss's per-column kernels (ColumnVariants) and for its sum
// (SumVariants), each with the other kernels built in, on both paths and
// shapes that are multiples of no workgroup, against float64: the loss,
// both gradients and the statistics.
func TestLossVariants(t *testing.T) {
	d := gputest.Device(t)
	defer d.SetTuning(gpu.Tuning{})
	for _, fused := range []bool{false, true} {
		for _, s := range [][2]int{{3, 17}, {17, 65}, {65, 3}, {17, 129}} {
			n, dim := s[0], s[1]
			p := lossParams(n)[0]
			l, err := NewBarlowTwins(d, n, dim, options(p[0], p[1], fused))
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			for _, c := range []gpu.KernelCase{l.colCase(), l.sumCase()} {
				var vs []gpu.KernelVariant
				if c.Class.Family == gpu.FamilyLossColumns {
					vs = ColumnVariants(d, c)
				} else {
					vs = SumVariants(d, c)
				}
				if len(vs) < 4 {
					t.Fatalf("%v: %d variants: %v", c.Class, len(vs), vs)
				}
				for _, v := range vs {
					t.Run(fmt.Sprintf("%s/%dx%d/%v", PathName(fused), n, dim, v), func(t *testing.T) {
						if err := d.SetTuning(gpu.Tuning{Kernels: map[gpu.KernelClass]gpu.KernelVariant{c.Class: v}}); err != nil {
							t.Fatal(err)
						}
						var want ref.BTTerms
						gputest.Check(t, d, kcheck.LossOp(l, n, dim, kcheck.BTLossRef(n, dim, float64(p[0]), float64(p[1]), &want)))
						got, err := l.Stats()
						if err != nil {
							t.Fatal(err)
						}
						checkStats(t, got, want)
					})
				}
			}
		}
	}
}
