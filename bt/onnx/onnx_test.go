package onnx_test

import (
	"errors"
	"fmt"
	"image"
	"image/color"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/encoder"
	"github.com/bt-org/bt/bt/onnx"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/layers"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
)

// tol bounds the disagreement between ONNX Runtime and bt: every value
// within 1e-4 of the larger of its own magnitude and its vector's RMS (a
// representation's entries near zero are sums that cancel, whose error is
// that of the terms).
const tol = 1e-4

// needRuntime skips, naming why, where ONNX Runtime is not installed;
// scripts/setup.sh installs it, so CI runs these tests.
func needRuntime(t *testing.T) {
	t.Helper()
	if _, err := onnx.LibraryPath(); errors.Is(err, onnx.ErrNoRuntime) {
		t.Skipf("ONNX Runtime is not installed: %v", err)
	}
}

// checkpoint writes a checkpoint of a freshly initialised model whose
// BatchNorms hold random affine parameters and running statistics (their
// initial values, γ = 1, β = 0, mean 0, var 1, would hide a misplaced
// one). full writes a run's checkpoint with the projector, otherwise an
// exported backbone.
func checkpoint(t *testing.T, d *gpu.Device, arch string, stem models.Stem, augment pipeline.PresetName, size int, full bool) string {
	t.Helper()
	cfg := train.DefaultConfig()
	cfg.Data.Name, cfg.Data.Augment, cfg.Data.Size = "synthetic", augment, size
	cfg.Model.Arch, cfg.Model.Stem, cfg.Model.Projector = arch, stem, "48-24"
	rc, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	cfg = rc.Config()
	m, err := train.NewModel(d, cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	rng := rand.New(rand.NewPCG(uint64(len(arch)), uint64(size)))
	fill := func(tn *gpu.Tensor, lo, hi float64) {
		v := make([]float32, tn.Len())
		for i := range v {
			v[i] = float32(lo + (hi-lo)*rng.Float64())
		}
		if err := tn.Upload(v); err != nil {
			t.Fatal(err)
		}
	}
	for _, bn := range append(m.Backbone.BatchNorms(), m.Projector.BatchNorms()...) {
		randomise(bn, fill)
	}
	path := filepath.Join(t.TempDir(), arch+".safetensors")
	if full {
		err = train.SaveCheckpoint(path, m, nil, train.RunState{Config: cfg})
	} else {
		err = train.ExportBackbone(path, m, cfg.Data)
	}
	if err != nil {
		t.Fatal(err)
	}
	return path
}

func randomise(bn *layers.BatchNorm, fill func(*gpu.Tensor, float64, float64)) {
	fill(bn.Gamma.Value, 0.5, 1.5)
	fill(bn.Beta.Value, -0.3, 0.3)
	fill(bn.RunningMean, -0.2, 0.2)
	fill(bn.RunningVar, 0.5, 2)
}

// pictures are n random images of odd sizes, none the model's.
func pictures(rng *rand.Rand, n int) []image.Image {
	var out []image.Image
	for i := range n {
		w, h := 37+2*i, 29+3*i
		img := image.NewNRGBA(image.Rect(0, 0, w, h))
		for y := range h {
			for x := range w {
				img.SetNRGBA(x, y, color.NRGBA{uint8(rng.IntN(256)), uint8(rng.IntN(256)), uint8(rng.IntN(256)), 255})
			}
		}
		out = append(out, img)
	}
	return out
}

// compare checks got against want, vector by vector, and returns the
// largest error relative to tol's scale.
func compare(t *testing.T, what string, got, want [][]float32) float64 {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d vectors, want %d", what, len(got), len(want))
	}
	worst := 0.0
	for i := range want {
		if len(got[i]) != len(want[i]) {
			t.Fatalf("%s %d: %d values, want %d", what, i, len(got[i]), len(want[i]))
		}
		rms := 0.0
		for _, v := range want[i] {
			rms += float64(v) * float64(v)
		}
		rms = math.Sqrt(rms / float64(len(want[i])))
		for j, w := range want[i] {
			e := math.Abs(float64(got[i][j])-float64(w)) / max(math.Abs(float64(w)), rms, 1e-30)
			if !(e <= tol) { // NaN fails too
				t.Errorf("%s %d[%d]: ONNX Runtime %g, bt %g (relative error %.2g)", what, i, j, got[i][j], w, e)
				return e
			}
			worst = max(worst, e)
		}
	}
	return worst
}

// TestMatchesBt exports every architecture, with both stems and both ways
// of writing BatchNorm, and checks that ONNX Runtime gives bt's
// representations (and the projector's embeddings) for the same images,
// preprocessed from the model's metadata by Session.Embed and from the
// checkpoint's by bt's encoder.
func TestMatchesBt(t *testing.T) {
	needRuntime(t)
	d := gputest.Device(t)
	for _, tc := range []struct {
		arch    string
		stem    models.Stem
		augment pipeline.PresetName
		size    int
		bn      onnx.BatchNorm
		full    bool // a run's checkpoint, exported with its projector
	}{
		{"tiny", models.SmallStem, "fashion-mnist", 28, onnx.FoldBN, false},
		{"tiny", models.SmallStem, "cifar", 32, onnx.BatchNormNodes, true},
		{"tiny", models.SmallStem, "cifar", 17, onnx.FoldBN, true},
		{"resnet18", models.SmallStem, "cifar", 16, onnx.BatchNormNodes, false},
		{"resnet18", models.ImageNetStem, "imagenet", 32, onnx.FoldBN, true},
		{"resnet34", models.ImageNetStem, "fashion-mnist", 32, onnx.BatchNormNodes, false},
		{"resnet34", models.SmallStem, "cifar", 8, onnx.FoldBN, false},
		{"resnet50", models.ImageNetStem, "imagenet", 32, onnx.FoldBN, false},
		{"resnet50", models.SmallStem, "cifar", 8, onnx.BatchNormNodes, true},
	} {
		name := fmt.Sprintf("%s/%s/%dpx/%s", tc.arch, tc.stem, tc.size, tc.bn)
		if tc.full {
			name += "/projector"
		}
		t.Run(name, func(t *testing.T) {
			ckpt := checkpoint(t, d, tc.arch, tc.stem, tc.augment, tc.size, tc.full)
			c, err := train.LoadCheckpoint(ckpt)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "model.onnx")
			if err := onnx.Write(path, c, onnx.Options{BatchNorm: tc.bn, Projector: tc.full}); err != nil {
				t.Fatal(err)
			}
			s, err := onnx.Open(path, onnx.SessionOptions{})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			images := pictures(rand.New(rand.NewPCG(7, uint64(tc.size))), 3)
			got, err := s.Embed(images)
			if err != nil {
				t.Fatal(err)
			}

			enc, err := encoder.Load(d, ckpt)
			if err != nil {
				t.Fatal(err)
			}
			defer enc.Release()
			want, err := enc.Embed(images)
			if err != nil {
				t.Fatal(err)
			}
			worst := compare(t, "representation", got[0], want)
			if tc.full {
				wantZ := project(t, d, c, want)
				worst = max(worst, compare(t, "embedding", got[1], wantZ))
			}
			t.Logf("largest relative error %.2g; metadata size %s, mean %s, std %s", worst, s.Meta[onnx.MetaSize], s.Meta[onnx.MetaMean], s.Meta[onnx.MetaStd])
		})
	}
}

// project runs bt's projector, in evaluation mode, on representations.
func project(t *testing.T, d *gpu.Device, c *train.Checkpoint, repr [][]float32) [][]float32 {
	t.Helper()
	m, err := train.NewModel(d, c.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	if err := c.Restore(m, nil); err != nil {
		t.Fatal(err)
	}
	n, dim := len(repr), len(repr[0])
	var flat []float32
	for _, r := range repr {
		flat = append(flat, r...)
	}
	x, err := d.FromSlice(flat, n, dim)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release()
	z, err := d.NewTensor(n, m.Projector.Out)
	if err != nil {
		t.Fatal(err)
	}
	defer z.Release()
	p := models.NewPassOf(d, false, gpu.F32)
	defer p.Release()
	if err := d.Run(func(r *gpu.Recorder) error { return m.Projector.Forward(r, p, z, x, n) }); err != nil {
		t.Fatal(err)
	}
	v, err := z.Download()
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float32, n)
	for i := range out {
		out[i] = v[i*m.Projector.Out : (i+1)*m.Projector.Out]
	}
	return out
}

// TestRefuses checks that a bad request is an error naming its cause, and
// that nothing is written.
func TestRefuses(t *testing.T) {
	d := gputest.Device(t)
	exported := checkpoint(t, d, "tiny", models.SmallStem, "cifar", 16, false)
	c, err := train.LoadCheckpoint(exported)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opt  onnx.Options
		want string
	}{
		{"unknown batchnorm", onnx.Options{BatchNorm: "fused"}, `BatchNorm "fused"`},
		{"projector of an exported backbone", onnx.Options{Projector: true}, "holds no projector"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "model.onnx")
			err := onnx.Write(path, c, tc.opt)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error saying %q", err, tc.want)
			}
			if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("%s was written: %v", path, err)
			}
		})
	}
	t.Run("no model settings", func(t *testing.T) {
		bare := *c
		bare.Model.Arch = ""
		if _, err := onnx.Marshal(&bare, onnx.Options{}); err == nil || !strings.Contains(err.Error(), "records no model settings") {
			t.Fatalf("got %v, want an error saying the file records no model", err)
		}
	})
	t.Run("another architecture's tensors", func(t *testing.T) {
		other := *c
		other.Model.Arch = "resnet18"
		if _, err := onnx.Marshal(&other, onnx.Options{}); err == nil || !strings.Contains(err.Error(), "the resnet18 network needs") {
			t.Fatalf("got %v, want an error naming the tensor resnet18 needs", err)
		}
	})
}
