package bench

import (
	"flag"
	"fmt"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
)

var lossShapes = flag.String("loss.shapes", "", "comma-separated BenchmarkLoss shapes (default all; the first only with -short), from: "+lossShapeNames())

func lossShapeNames() string {
	var names []string
	for _, s := range LossShapes {
		names = append(names, s.Name)
	}
	return strings.Join(names, ",")
}

// selectedLossShapes are the shapes -loss.shapes names, or all of them, or
// with -short only the smallest: the others take minutes on lavapipe.
func selectedLossShapes(b *testing.B) []LossShape {
	if *lossShapes == "" {
		if testing.Short() {
			return LossShapes[:1]
		}
		return LossShapes
	}
	var out []LossShape
	for _, name := range strings.Split(*lossShapes, ",") {
		found := false
		for _, s := range LossShapes {
			if s.Name == strings.TrimSpace(name) {
				out = append(out, s)
				found = true
			}
		}
		if !found {
			b.Fatalf("unknown loss shape %q; known: %s", name, lossShapeNames())
		}
	}
	return out
}

// BenchmarkLoss reports the fused loss's forward and backward pass in
// useful GFLOP/s (the materialised path's 6·N·D² flops) and the pool memory
// it needs, and, measured in the same run, the materialised path where C
// fits and the three GEMMs the fused path replaces, with the time ratio.
func BenchmarkLoss(b *testing.B) {
	d := gputest.Device(b)
	for _, s := range selectedLossShapes(b) {
		b.Run(s.Name, func(b *testing.B) {
			d.Trim()
			base := poolBytes(d)
			st, err := NewLossStep(d, s, true)
			if err != nil {
				b.Fatal(err)
			}
			if err := st.Run(); err != nil {
				st.Release()
				b.Fatal(err)
			}
			bytes := poolBytes(d) - base
			for b.Loop() {
				if err := st.Run(); err != nil {
					b.Fatal(err)
				}
			}
			sec := b.Elapsed().Seconds() / float64(b.N)
			st.Release()
			b.ReportMetric(s.Flops()/sec/1e9, "GFLOP/s")
			b.ReportMetric(float64(bytes)/(1<<20), "MiB")
			r, err := MeasureLoss(d, s.N, s.D, 0)
			if err != nil {
				b.Fatal(err)
			}
			if r.Materialised.Measured {
				b.ReportMetric(r.Materialised.GFLOPS, "materialised-GFLOP/s")
				b.ReportMetric(float64(r.Materialised.Bytes)/(1<<20), "materialised-MiB")
			}
			b.ReportMetric(r.GEMMs.GFLOPS, "3gemms-GFLOP/s")
			b.ReportMetric(sec/r.GEMMs.Seconds, "x-3gemms-time")
			b.Log("\n" + r.String())
		})
	}
}

// TestLossBenchmarkRuns keeps the benchmark's code paths working in CI on
// shapes small enough for lavapipe: MeasureLoss with both paths, and the
// GEMM baseline in panels, as it runs where C does not fit.
func TestLossBenchmarkRuns(t *testing.T) {
	d := gputest.Device(t)
	r, err := MeasureLoss(d, 17, 33, 0)
	if err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]LossPath{"fused": r.Fused, "materialised": r.Materialised, "3 GEMMs": r.GEMMs} {
		if !p.Measured || !(p.Seconds > 0) || !(p.GFLOPS > 0) || p.Bytes == 0 {
			t.Errorf("%s: %+v", name, p)
		}
	}
	if r.Shape.Flops() != 6*17*33*33 {
		t.Errorf("flop count %v", r.Shape.Flops())
	}
	if !strings.Contains(r.String(), "fused takes") {
		t.Errorf("report lacks the ratio:\n%s", r)
	}
	s := LossShape{"tiny", 17, 33}
	g, err := NewLossGEMMs(d, s, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Release()
	if err := g.Run(); err != nil {
		t.Fatal(err)
	}
	if _, err := NewLossGEMMs(d, s, 2); err == nil {
		t.Error("2 panels of a width of 33 were accepted")
	}
}

// BenchmarkLossReductions times the loss at 256×2048 on both paths with its
// reductions (the per-column normalisation and its backward, and the sums
// over C or the Gram matrices) in subgroups and in workgroup memory, and
// reports those kernels' device time apart from the step's.
func BenchmarkLossReductions(b *testing.B) {
	s := LossShapes[0]
	for _, fused := range []bool{true, false} {
		b.Run(fmt.Sprintf("%s/%s", s.Name, loss.PathName(fused)), func(b *testing.B) {
			gputest.SubgroupModes(b, func(b *testing.B, d *gpu.Device) {
				st, err := NewLossStep(d, s, fused)
				if err != nil {
					b.Fatal(err)
				}
				defer st.Release()
				if err := st.Run(); err != nil {
					b.Fatal(err)
				}
				for b.Loop() {
					if err := st.Run(); err != nil {
						b.Fatal(err)
					}
				}
				record := func(r *gpu.Recorder) error {
					if err := st.Loss.Forward(r, st.out, st.za, st.zb); err != nil {
						return err
					}
					return st.Loss.Backward(r, st.dza, st.dzb)
				}
				for _, k := range []string{"btloss_norm", "btloss_sum", "btloss_back"} {
					b.ReportMetric(gputest.KernelMillis(b, d, record, k), k+"-ms")
				}
			})
		})
	}
}
