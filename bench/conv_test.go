package bench

import (
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
)

// BenchmarkConv reports each pass of each layer in GFLOP/s and as a
// fraction of the adapter's GEMM at 1024³ measured in the same run.
func BenchmarkConv(b *testing.B) {
	d := gputest.Device(b)
	g, err := MeasureGemm(d, GemmShape{"square-1024", 1024, 1024, 1024}, 0)
	if err != nil {
		b.Fatal(err)
	}
	for _, c := range ConvCases {
		b.Run(c.Name, func(b *testing.B) {
			var r ConvResult
			for b.Loop() {
				if r, err = MeasureConv(d, c, 0); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(r.Forward, "fwd-GFLOP/s")
			b.ReportMetric(r.Data, "dgrad-GFLOP/s")
			b.ReportMetric(r.Weight, "wgrad-GFLOP/s")
			b.ReportMetric(r.Forward/g.GFLOPS, "fwd/gemm1024")
		})
	}
}

// TestConvBenchmarkRuns keeps the benchmark's code path working on a shape
// lavapipe runs in milliseconds.
func TestConvBenchmarkRuns(t *testing.T) {
	d := gputest.Device(t)
	c := ConvCase{"tiny", gpu.ConvShape{N: 2, Cin: 3, H: 9, W: 9, Cout: 5, KH: 3, KW: 3, Stride: 2, Pad: 1}}
	r, err := MeasureConv(d, c, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !(r.Forward > 0 && r.Data > 0 && r.Weight > 0) {
		t.Fatalf("non-positive figures: %+v", r)
	}
	if c.Flops() != 2*2*5*25*27 {
		t.Fatalf("flop count %v", c.Flops())
	}
}
