package bench

import (
	"regexp"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
)

// BenchmarkTwinStep reports training throughput of the tiny backbone with
// a 512-512-512 projector at batch 256 on 28-pixel grayscale views, the
// setting of tools/reference/torch_twin_step.py's default, whose PyTorch
// figure it is compared with.
func BenchmarkTwinStep(b *testing.B) {
	d := gputest.Device(b)
	var r TwinResult
	var err error
	for b.Loop() {
		if r, err = MeasureTwinStep(d, "tiny", 256, 28, "512-512-512", gpu.F32, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(r.PairsPerSec, "pairs/s")
	b.ReportMetric(1e3*r.Seconds, "ms/step")
	b.ReportMetric(float64(r.PeakBytes)/(1<<20), "peak-MiB")
}

// BenchmarkTwinStepHalf reports the same step with f16 activations (mixed
// precision) and, measured in the same run, in f32, with the ratios of
// their throughput and peak memory.
func BenchmarkTwinStepHalf(b *testing.B) {
	d := gputest.Device(b)
	gputest.NeedF16(b, d)
	var half, full TwinResult
	var err error
	for b.Loop() {
		if half, err = MeasureTwinStep(d, "tiny", 256, 28, "512-512-512", gpu.F16, 0); err != nil {
			b.Fatal(err)
		}
		if full, err = MeasureTwinStep(d, "tiny", 256, 28, "512-512-512", gpu.F32, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(half.PairsPerSec, "pairs/s")
	b.ReportMetric(half.PairsPerSec/full.PairsPerSec, "x-f32")
	b.ReportMetric(float64(half.PeakBytes)/float64(full.PeakBytes), "peak-x-f32")
}

// TestTwinBenchmarkRuns keeps the twin-step benchmark and profile working
// on a shape lavapipe runs in a fraction of a second.
func TestTwinBenchmarkRuns(t *testing.T) {
	d := gputest.Device(t)
	r, err := MeasureTwinStep(d, "tiny", 8, 12, "16-16", gpu.F32, 0)
	if err != nil {
		t.Fatal(err)
	}
	if r.Steps < 1 || !(r.Seconds > 0) || !(r.PairsPerSec > 0) || r.PeakBytes == 0 || r.Params == 0 {
		t.Fatalf("implausible result: %+v", r)
	}
	if !strings.Contains(r.String(), "pairs/s") {
		t.Errorf("report: %s", r)
	}
	if len(gputest.Precisions(t, d)) > 1 {
		h, err := MeasureTwinStep(d, "tiny", 8, 12, "16-16", gpu.F16, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(h.String(), "f16 activations") || !(h.PairsPerSec > 0) {
			t.Errorf("f16 report: %s", h)
		}
	}
	if !d.HasTimestamps() {
		t.Fatalf("%s has no timestamps; the profile needs them", d.Info.Name)
	}
	p, err := ProfileTwinStep(d, "tiny", 8, 12, "16-16", gpu.F32, 2)
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	have := map[string]bool{}
	for _, f := range p.Families {
		if f.Dispatches < 1 || !(f.Nanos >= 0) {
			t.Errorf("family %+v", f)
		}
		sum += f.Nanos
		have[f.Family] = true
	}
	if !(p.Total > 0) || sum != p.Total {
		t.Errorf("total %v, families sum to %v", p.Total, sum)
	}
	// The convolution passes are told apart by their B operand; A depends
	// on the adapter's tiles, and BatchNorm's kernel on its layout.
	for _, want := range [][2]string{{"gemm", "B=im2col}"}, {"gemm", "B=im2col_t}"}, {"gemm", "B=dy_col}"},
		{"batchnorm", "{Mode=train}"}, {"batchnorm", "{Mode=backward}"}} {
		found := false
		for f := range have {
			found = found || strings.HasPrefix(f, want[0]) && strings.HasSuffix(f, want[1])
		}
		if !found {
			t.Errorf("profile lacks a family %s…%s:\n%s", want[0], want[1], p)
		}
	}
	// The families whose kernels state their work carry it to the
	// roofline; the total beside itself is ×1.
	roof := p.Roofline(Ceilings{GFLOPS: 100, GBps: 10})
	for _, f := range p.Families {
		states := strings.HasPrefix(f.Family, "elementwise") || strings.HasPrefix(f.Family, "batchnorm") ||
			strings.HasPrefix(f.Family, "btloss_norm") || strings.HasPrefix(f.Family, "btloss_back") || strings.HasPrefix(f.Family, "btloss_sum")
		if states && !(f.Bytes > 0 && strings.Contains(roof, f.Family+" ")) {
			t.Errorf("family %+v states no work, or the roofline lacks it:\n%s", f, roof)
		}
	}
	if b := p.Beside(p, "a", "b"); !regexp.MustCompile(`(?m)^total +[0-9.]+ +[0-9.]+ +1\.00$`).MatchString(b) {
		t.Errorf("a profile beside itself:\n%s", b)
	}
}

func TestFamily(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"gemm{A=dense,AKFast=true,B=im2col,BK=8,BM=16}", "gemm{A=dense,B=im2col}"},
		{"batchnorm{Affine=true,BX=1,BY=256,Mode=train}", "batchnorm{Mode=train}"},
		{"batchnorm_serial{Affine=true,Mode=backward,Pass=2}", "batchnorm{Mode=backward}"},
		{"optim{Elems=16}", "optim"},
		{"elementwise{Expr=select(0.0, dy[i], x[i] > 0.0),Inputs=[dy x],WG=256}", "elementwise{Expr=select(0.0, dy[i], x[i] > 0.0)}"},
		{"plain", "plain"},
	} {
		if got := Family(c.in); got != c.want {
			t.Errorf("Family(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}
