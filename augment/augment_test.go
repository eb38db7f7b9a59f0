package augment_test

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/selfcheck"
	"github.com/bt-org/bt/pipeline"
)

// base is a view with every random step off: crop and resize (with a flip
// drawn half the time) and normalisation only.
func base(size, c int, f pipeline.Filter) pipeline.ViewConfig {
	v := pipeline.ViewConfig{Size: size, Crop: pipeline.RandomResizedCrop, Scale: [2]float64{0.08, 1}, Ratio: [2]float64{3.0 / 4, 4.0 / 3},
		Filter: f, FlipP: 0.5, SolarizeThreshold: 128.0 / 255, BlurKernelFraction: 0.1, Sigma: [2]float64{0.1, 2}}
	for ch := range c {
		v.Mean = append(v.Mean, 0.4+0.05*float32(ch))
		v.Std = append(v.Std, 0.25)
	}
	return v
}

// render runs one view over images on the device and on the CPU with the
// same draws (selfcheck.AugmentViews) and returns the largest absolute
// difference, failing on any NaN (the output is NaN-filled first, so an
// unwritten value shows).
func render(t *testing.T, d *gpu.Device, rng *rand.Rand, v pipeline.ViewConfig, imgs []pipeline.Image8) float64 {
	t.Helper()
	got, want, err := selfcheck.AugmentViews(d, rng, v, imgs)
	if err != nil {
		t.Fatal(err)
	}
	sz := len(want) / len(imgs)
	var worst float64
	for i, w := range want {
		g := got[i]
		if math.IsNaN(float64(g)) {
			t.Fatalf("sample %d value %d not written", i/sz, i%sz)
		}
		worst = max(worst, math.Abs(float64(g-w)))
	}
	return worst
}

// TestKernelsMatchCPU checks each stage, switched on in turn, against the
// CPU path on odd output sizes and odd source sizes, in both filters and
// channel counts. Tolerances (after normalisation by std 0.25, so 4× the
// pixel-domain error):
//   - resize: 1e-4 (under 1% of an 8-bit level before normalisation). The
//     taps and weights are the CPU's formulas in float32
//     instead of float64, summed in the same order.
//   - jitter: 2e-4. Contrast's mean luma is a float32 tree sum (the CPU sums
//     in float64), and the hue round trip runs in different rounding.
//   - grayscale, blur: 2e-4. Same weights (uploaded from the CPU's), same
//     order; the error is what resize and jitter leave.
//   - solarization (and all steps together): 0.016. A value within
//     rounding of the threshold 128/255 may land on the other side of it,
//     and v and 1−v differ there by |1−2·128/255| = 1/255, 0.0157 after
//     normalisation; everything else stays within 2e-4.
func TestKernelsMatchCPU(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	on := func(f func(v *pipeline.ViewConfig)) func(v *pipeline.ViewConfig) { return f }
	jitter := on(func(v *pipeline.ViewConfig) {
		v.JitterP, v.Brightness, v.Contrast, v.Saturation, v.Hue = 1, 0.4, 0.4, 0.2, 0.1
	})
	for _, tt := range []struct {
		name  string
		set   func(v *pipeline.ViewConfig)
		tol   float64
		chans []int
	}{
		{"resize", on(func(*pipeline.ViewConfig) {}), 1e-4, []int{1, 3}},
		{"jitter", jitter, 2e-4, []int{1, 3}},
		{"grayscale", on(func(v *pipeline.ViewConfig) { jitter(v); v.GrayP = 1 }), 2e-4, []int{3}},
		{"blur", on(func(v *pipeline.ViewConfig) { v.BlurP = 1 }), 2e-4, []int{1, 3}},
		{"solarize", on(func(v *pipeline.ViewConfig) { v.SolarizeP = 1 }), 0.016, []int{3}},
		{"all", on(func(v *pipeline.ViewConfig) { jitter(v); v.GrayP, v.BlurP, v.SolarizeP = 0.2, 0.5, 0.2 }), 0.016, []int{1, 3}},
	} {
		for _, f := range []pipeline.Filter{pipeline.Bilinear, pipeline.Bicubic} {
			for _, c := range tt.chans {
				for _, size := range []int{1, 3, 17, 65} {
					v := base(size, c, f)
					tt.set(&v)
					var imgs []pipeline.Image8
					for _, hw := range [][2]int{{1, 1}, {3, 5}, {17, 9}, {65, 33}, {130, 97}} {
						// Sources with the output's channels, and RGB
						// sources for a gray output (converted on the way).
						imgs = append(imgs, selfcheck.RandomImage8(rng, c, hw[0], hw[1]))
					}
					if c == 1 {
						imgs = append(imgs, selfcheck.RandomImage8(rng, 3, 40, 50))
					}
					if worst := render(t, d, rng, v, imgs); worst > tt.tol {
						t.Errorf("%s %s C=%d size %d: max abs difference %.3g, want ≤ %.1g", tt.name, f, c, size, worst, tt.tol)
					}
				}
			}
		}
	}
}
