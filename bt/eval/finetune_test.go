package eval

import (
	"slices"
	"testing"

	"github.com/bt-org/bt/bt/train"
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
