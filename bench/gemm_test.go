package bench

import (
	"testing"
	"time"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
)

// BenchmarkGemm reports GFLOP/s of bt's GEMM and, measured in the same run,
// of gonum's CPU BLAS on the same operands, with their ratio.
func BenchmarkGemm(b *testing.B) {
	d := gputest.Device(b)
	for _, s := range GemmShapes {
		b.Run(s.Name, func(b *testing.B) {
			g, err := NewGemm(d, s)
			if err != nil {
				b.Fatal(err)
			}
			defer g.Release()
			if err := g.Run(1); err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				if err := g.Run(1); err != nil {
					b.Fatal(err)
				}
			}
			gflops := s.Flops() * float64(b.N) / b.Elapsed().Seconds() / 1e9
			cpu, _ := Time(time.Second, func() error { g.CPU(); return nil })
			b.ReportMetric(gflops, "GFLOP/s")
			b.ReportMetric(s.Flops()/cpu/1e9, "gonum-GFLOP/s")
			b.ReportMetric(gflops/(s.Flops()/cpu/1e9), "x-gonum")
		})
	}
}

// BenchmarkGemmHalf reports GFLOP/s of GEMM with every operand stored as
// f16 (mixed precision: f32 products and sums) and, in the same run, of
// the same product in f32, with their ratio.
func BenchmarkGemmHalf(b *testing.B) {
	d := gputest.Device(b)
	gputest.NeedF16(b, d)
	for _, s := range GemmShapes[2:4] {
		b.Run(s.Name, func(b *testing.B) {
			var gs [2]*Gemm
			for i, t := range []gpu.DType{gpu.F16, gpu.F32} {
				g, err := NewGemmOf(d, s, t)
				if err != nil {
					b.Fatal(err)
				}
				defer g.Release()
				if err := g.Run(1); err != nil {
					b.Fatal(err)
				}
				gs[i] = g
			}
			for b.Loop() {
				if err := gs[0].Run(1); err != nil {
					b.Fatal(err)
				}
			}
			half := s.Flops() * float64(b.N) / b.Elapsed().Seconds() / 1e9
			full, err := Time(time.Second, func() error { return gs[1].Run(1) })
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(half, "GFLOP/s")
			b.ReportMetric(s.Flops()/full/1e9, "f32-GFLOP/s")
			b.ReportMetric(half/(s.Flops()/full/1e9), "x-f32")
		})
	}
}

// TestGemmBenchmarkRuns keeps the benchmark's own code path working in CI
// on a shape small enough for lavapipe, and checks its arithmetic.
func TestGemmBenchmarkRuns(t *testing.T) {
	d := gputest.Device(t)
	s := GemmShape{"tiny", 33, 65, 17}
	r, err := MeasureGemm(d, s, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !(r.GFLOPS > 0) || !(r.CPUGFLOPS > 0) {
		t.Fatalf("non-positive figures: %+v", r)
	}
	if s.Flops() != 2*33*65*17 {
		t.Fatalf("flop count %v", s.Flops())
	}
}
