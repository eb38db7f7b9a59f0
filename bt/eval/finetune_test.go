package eval

import (
	"bytes"
	"image"
	"image/jpeg"
	"io"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
)

// TestTrainClassifier trains a classifier on 1% of Fashion-MNIST's labels
// (600 images) through a random tiny backbone: frozen (the linear
// protocol), the backbone must not change; fine-tuned (the semi-supervised
// protocol), it must; both must beat chance (10%) clearly on held-out
// images.
func TestTrainClassifier(t *testing.T) {
	d := gputest.Device(t)
	all, err := pipeline.Open("fashion-mnist", "", "train")
	if err != nil {
		t.Fatalf("needs Fashion-MNIST (apt-get install -y dataset-fashion-mnist): %v", err)
	}
	trainSet, err := pipeline.Sample(all, 600, 1)
	if err != nil {
		t.Fatal(err)
	}
	tests, err := pipeline.Open("fashion-mnist", "", "test")
	if err != nil {
		t.Fatal(err)
	}
	test, err := pipeline.Sample(tests, 300, 2)
	if err != nil {
		t.Fatal(err)
	}
	view, err := pipeline.ProbePreset("fashion-mnist")
	if err != nil {
		t.Fatal(err)
	}
	testView, err := pipeline.EvalPreset("fashion-mnist")
	if err != nil {
		t.Fatal(err)
	}
	// Chance is 10%, with a standard deviation of 1.7 points on 300 test
	// images; random features are weak, so the frozen bar is 18%.
	for _, tc := range []struct {
		name   string
		cfg    SupervisedConfig
		change bool
		min    float64
	}{
		{"frozen", SupervisedConfig{Epochs: 10, Batch: 50, LRHead: 2, Seed: 1}, false, 0.18},
		{"fine-tuned", SupervisedConfig{Epochs: 5, Batch: 50, LRHead: 0.3, LRBackbone: 0.05, Seed: 1}, true, 0.3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m, err := train.NewModel(d, train.ModelConfig{Arch: "tiny", Stem: models.SmallStem, InChannels: 1, Projector: "8", Seed: 4})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Release()
			before, err := m.Backbone.Params()[0].Value.Download()
			if err != nil {
				t.Fatal(err)
			}
			r, err := TrainClassifier(d, m.Backbone, 10, trainSet, view, test, testView, tc.cfg)
			if err != nil {
				t.Fatal(err)
			}
			after, err := m.Backbone.Params()[0].Value.Download()
			if err != nil {
				t.Fatal(err)
			}
			if changed := !slices.Equal(before, after); changed != tc.change {
				t.Errorf("backbone changed: %v, want %v", changed, tc.change)
			}
			t.Logf("top-1 %.3f, top-5 %.3f", r.Top1, r.Top5)
			if r.Top1 < tc.min {
				t.Errorf("top-1 %.3f on 10 classes; want at least %.2f", r.Top1, tc.min)
			}
		})
	}
}

// TestInputsOnDevice: the classifier's training inputs rendered on the
// device are the loader's CPU views of the same draws, over a subset of a
// folder of JPEGs (as bt eval semi's label fraction), so both paths decode
// the same 8-bit images at the same reduced scale. The probe's view is
// crop, resize, flip and normalisation: the tolerance is augment's resize
// bound, 1e-4 after normalisation by std 0.25 (float32 taps against the
// CPU's float64 plan), scaled to ImageNet's smallest std, 0.224: 1.2e-4.
func TestInputsOnDevice(t *testing.T) {
	d := gputest.Device(t)
	root := t.TempDir()
	rng := rand.New(rand.NewPCG(5, 6))
	for i := range 9 {
		m := image.NewNRGBA(image.Rect(0, 0, 90+7*i, 70))
		for j := range m.Pix {
			m.Pix[j] = uint8(rng.IntN(256))
		}
		dir := filepath.Join(root, []string{"a", "b", "c"}[i%3])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, m, &jpeg.Options{Quality: 90}); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)+".jpg"), buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	folder, err := pipeline.OpenFolder(root, pipeline.FolderOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ds, err := pipeline.NewSubset(folder, []int{8, 0, 3, 5, 1, 7, 2})
	if err != nil {
		t.Fatal(err)
	}
	view, err := pipeline.ProbePreset("imagenet")
	if err != nil {
		t.Fatal(err)
	}
	view.Size = 17
	const bs = 3
	render := func(onDevice bool) [][]float32 {
		x := gputest.Zeros(t, d, bs, 3, view.Size, view.Size)
		in, err := newInputs(d, ds, view, pipeline.LoaderConfig{BatchSize: bs, Workers: 2, Seed: 9, Shuffle: true, DropLast: true, Epochs: 3}, onDevice, x)
		if err != nil {
			t.Fatal(err)
		}
		defer in.close()
		var out [][]float32
		for {
			b, err := in.next()
			if err == io.EOF {
				return out
			}
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Run(func(r *gpu.Recorder) error { return in.record(r, b) }); err != nil {
				t.Fatal(err)
			}
			in.recycle(b)
			v, err := x.Download()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
	}
	cpu, dev := render(false), render(true)
	if len(cpu) != 6 || len(dev) != len(cpu) {
		t.Fatalf("%d batches on the CPU and %d on the device, want 6 each (3 epochs of 2)", len(cpu), len(dev))
	}
	const tol = 1.2e-4
	var worst float64
	for i := range cpu {
		for j, w := range cpu[i] {
			worst = max(worst, math.Abs(float64(dev[i][j]-w)))
		}
	}
	t.Logf("max abs difference %.3g", worst)
	if worst > tol {
		t.Errorf("device inputs differ from the CPU's by up to %.3g, want ≤ %g", worst, tol)
	}
}

// TestFineTuneRefusesHalf: fine-tuning trains the backbone in f32; asked
// for f16 activations it says so instead of training.
func TestFineTuneRefusesHalf(t *testing.T) {
	d := gputest.Device(t)
	ds, err := pipeline.Open("synthetic", "", "train")
	if err != nil {
		t.Fatal(err)
	}
	m, err := models.NewResNet(d, rand.New(rand.NewPCG(1, 2)), models.Config{Arch: "tiny", InChannels: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	view, err := pipeline.EvalPreset("cifar")
	if err != nil {
		t.Fatal(err)
	}
	cfg := SemiConfig()
	cfg.Activations = gpu.F16
	_, err = TrainClassifier(d, m, 10, ds, view, ds, view, cfg)
	if err == nil || !strings.Contains(err.Error(), "fine-tuning trains the backbone in f32") {
		t.Errorf("fine-tuning with f16 activations: %v", err)
	}
}
