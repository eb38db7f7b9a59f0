package train

import (
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
)

// jpegFolder writes n small JPEGs of assorted sizes (smooth gradients
// with noise, so that crops, flips and blur change the pixels) into a new
// folder and returns it.
func jpegFolder(t *testing.T, n int) string {
	t.Helper()
	root := t.TempDir()
	rng := gputest.Rand(t)
	for i := range n {
		w, h := 40+rng.IntN(40), 30+rng.IntN(40)
		m := image.NewRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				m.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), uint8(rng.IntN(256)), 255})
			}
		}
		f, err := os.Create(filepath.Join(root, fmt.Sprintf("%02d.jpg", i)))
		if err != nil {
			t.Fatal(err)
		}
		if err := jpeg.Encode(f, m, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// augmentRun is a pretraining configuration on jpegFolder's images: the
// ImageNet preset (every augmentation, blur and solarization included) at
// 16 px, batch 8, three steps.
func augmentRun(t *testing.T) Config {
	cfg := DefaultConfig()
	cfg.Data.Name, cfg.Data.Dir, cfg.Data.Size, cfg.Data.Workers = "folder-unlabeled", jpegFolder(t, 24), 16, 2
	cfg.Model.Projector = "32-32"
	cfg.Batch, cfg.Epochs, cfg.Steps, cfg.Seed = 8, 1, 3, 11
	return cfg
}

// TestAugmentOnDevice checks that a run augmenting on the device
// (AugmentOn "device", a raw loader and package augment in the step's
// recording) trains on the views the CPU path draws for the same seed.
//
// The first batch's views, device against CPU: the draws are shared (the
// raw loader hands out the very Params the augmenting loader applies), so a
// different crop, flip, jitter, blur or solarization would move values by
// O(1). That is also why no rate of crops, flips, blur or solarization is
// counted on device outputs here: the device applies the CPU path's draws
// (TestLoaderScaledDecode checks the raw loader's Params reproduce the
// augmenting loader's views exactly; package augment's tests each stage
// against the CPU's), so its rates are the draws' that pipeline's tests
// count. What remains is float rounding: at most 1/255 of a pixel, where
// solarization's threshold falls between the two roundings, 0.0175 after
// the preset's normalisation (std 0.224); 1e-3 otherwise, and 1e-4 on
// average.
//
// The first three losses then agree to 1e-3 relative: rounding of the views
// at 1e-5 moves a loss summed over C's 32×32 entries far less than that.
func TestAugmentOnDevice(t *testing.T) {
	d := gputest.Device(t)
	cfg := augmentRun(t)
	build := func(on AugmentPlace) *Run {
		c := cfg
		c.Data.AugmentOn = on
		r, err := New(d, c, Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(r.Release)
		if (r.Augment != nil) != (on == "device") {
			t.Fatalf("AugmentOn %q: augmenter %v", on, r.Augment != nil)
		}
		return r
	}

	cpu, dev := build("cpu"), build("device")
	bc, err := cpu.Loader.Next()
	if err != nil {
		t.Fatal(err)
	}
	bd, err := dev.Loader.Next()
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(bc.Index, bd.Index) || bd.A != nil || len(bd.Images) != cfg.Batch {
		t.Fatalf("raw batch: indices %v (CPU %v), A set %v, %d images", bd.Index, bc.Index, bd.A != nil, len(bd.Images))
	}
	views := make([]*gpu.Tensor, 2)
	for v := range views {
		views[v] = gputest.Zeros(t, d, bc.N, bc.C, bc.H, bc.W)
	}
	if err := d.Run(func(r *gpu.Recorder) error { return dev.Augment.Record(r, bd, views...) }); err != nil {
		t.Fatal(err)
	}
	for v, want := range [][]float32{bc.A, bc.B} {
		got, err := views[v].Download()
		if err != nil {
			t.Fatal(err)
		}
		var worst, sum float64
		far := 0
		for i, w := range want {
			e := math.Abs(float64(got[i] - w))
			worst, sum = max(worst, e), sum+e
			if e > 1e-3 {
				far++
			}
		}
		t.Logf("view %d: max difference %.3g, mean %.3g, %d of %d values beyond 1e-3", v, worst, sum/float64(len(want)), far, len(want))
		if worst > 0.0175 || sum/float64(len(want)) > 1e-4 || far > len(want)/1000 {
			t.Errorf("view %d on the device: max difference %.3g, mean %.3g, %d values beyond 1e-3; want ≤ 0.0175, ≤ 1e-4, ≤ %d", v, worst, sum/float64(len(want)), far, len(want)/1000)
		}
	}

	losses := map[AugmentPlace][]float32{}
	for _, on := range []AugmentPlace{AugmentCPU, AugmentDevice} {
		r := build(on)
		r.Loop.Hooks = append(r.Loop.Hooks, Hook{Name: "record", Fn: func(_ *Loop, ev Event) error {
			losses[on] = append(losses[on], ev.Loss)
			return nil
		}})
		if err := r.Loop.Execute(context.Background()); err != nil {
			t.Fatalf("AugmentOn %q: %v", on, err)
		}
	}
	t.Logf("losses: CPU %v, device %v", losses["cpu"], losses["device"])
	if len(losses["cpu"]) != cfg.Steps || len(losses["device"]) != cfg.Steps {
		t.Fatalf("%d and %d losses, want %d each", len(losses["cpu"]), len(losses["device"]), cfg.Steps)
	}
	for i, want := range losses["cpu"] {
		got := losses["device"][i]
		if !(want > 0) || math.Abs(float64(got-want)) > 1e-3*float64(want) {
			t.Errorf("step %d: loss %v on the device, %v on the CPU; want positive and within 1e-3 relative", i, got, want)
		}
	}
}

// TestAugmentOnValues checks AugmentOn's validation and that "auto" takes
// the device unless the adapter is a CPU.
func TestAugmentOnValues(t *testing.T) {
	d := gputest.Device(t)
	c := DefaultConfig()
	if c.Data.AugmentOn != "auto" {
		t.Errorf("default AugmentOn %q, want auto", c.Data.AugmentOn)
	}
	for _, tt := range []struct {
		on       AugmentPlace
		valid    bool
		onDevice bool
	}{{"auto", true, !d.IsCPU()}, {"", true, !d.IsCPU()}, {"cpu", true, false}, {"device", true, true}, {"gpu", false, false}} {
		c.Data.AugmentOn = tt.on
		if err := c.Validate(); (err == nil) != tt.valid || err != nil && !strings.Contains(err.Error(), `augment on "gpu": choose one of auto, cpu, device`) {
			t.Errorf("AugmentOn %q: Validate() = %v, want valid %v", tt.on, err, tt.valid)
		}
		if got := c.Data.OnDevice(d); tt.valid && got != tt.onDevice {
			t.Errorf("AugmentOn %q on %s: on the device %v, want %v", tt.on, d.Info, got, tt.onDevice)
		}
	}
}
