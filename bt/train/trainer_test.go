package train

import (
	"testing"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// TestTrainStepTorch replays one PyTorch training step
// (tools/fixtures/train_step.py): the same weights and views through the
// tiny backbone and a 32-32-16 projector (and, in the second fixture, the
// predictor of the asymmetry ablation), the official loss and LARS. The
// loss and every tensor of the state dict afterwards (weights, BatchNorm
// parameters and running statistics) must agree within 1e-4, on both
// loss paths.
func TestTrainStepTorch(t *testing.T) {
	for _, predictor := range []bool{false, true} {
		name := "train_step"
		if predictor {
			name += "_predictor"
		}
		t.Run(name, func(t *testing.T) { trainStepTorch(t, name, predictor) })
	}
}

// trainStepTorch replays one fixture; with predictor, the model carries the
// asymmetry ablation's predictor on the first branch.
func trainStepTorch(t *testing.T, name string, predictor bool) {
	d := gputest.Device(t)
	f := gputest.Fixture(t, "testdata/"+name+".json.gz")
	meta := func(k string) float64 {
		v, err := f.Float(k)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	n, size := int(meta("n")), int(meta("size"))
	for _, fused := range []bool{false, true} {
		t.Run(loss.PathName(fused), func(t *testing.T) {
			m, err := NewModel(d, ModelConfig{Arch: "tiny", InChannels: 1, Projector: "32-32-16", Predictor: predictor, Seed: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer m.Release()
			for _, nt := range m.State() {
				v, err := f.Get("init." + nt.Name)
				if err != nil {
					t.Fatal(err)
				}
				if err := nt.Tensor.Upload(kcheck.To32(v.Data)); err != nil {
					t.Fatalf("%s: %v", nt.Name, err)
				}
			}
			lo := loss.DefaultOptions()
			lo.Lambda, lo.Path = float32(meta("lambda")), loss.Materialised
			if fused {
				lo.Path = loss.Fused
			}
			obj, err := loss.NewBarlowTwins(d, n, 16, lo)
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Release()
			oc := optim.DefaultLARSConfig()
			oc.WeightDecay = meta("weight_decay")
			opt, err := optim.NewLARS(d, m.Params(), oc)
			if err != nil {
				t.Fatal(err)
			}
			defer opt.Release()
			tr, err := NewTrainer(d, m, obj, opt, TrainerOptions{Batch: n, Channels: 1, Height: size, Width: size})
			if err != nil {
				t.Fatal(err)
			}
			defer tr.Release()
			x1, _ := f.Get("x1")
			x2, _ := f.Get("x2")
			if _, err := tr.TwinStep(kcheck.To32(x1.Data), kcheck.To32(x2.Data), float32(meta("lr_weights")), float32(meta("lr_vectors"))); err != nil {
				t.Fatal(err)
			}
			sl, err := tr.Flush()
			if err != nil {
				t.Fatal(err)
			}
			want, _ := f.Get("loss")
			if err := ref.Compare([]float64{float64(sl.Loss)}, want.Data, 1e-4); err != nil {
				t.Errorf("loss %v, PyTorch %v: %v", sl.Loss, want.Data[0], err)
			}
			for _, nt := range m.State() {
				gputest.Expect(t, nt.Tensor, f, "final."+nt.Name, kcheck.Reduction)
			}
		})
	}
}

// TestStopGradient: with identical views the loss is symmetric in the two
// embeddings, so each branch contributes the same gradient; stopping the
// gradient at view B must therefore halve a plain SGD step's update.
func TestStopGradient(t *testing.T) {
	d := gputest.Device(t)
	const n, size = 8, 10
	rng := gputest.Rand(t)
	x := kcheck.To32(kcheck.Normal(rng, n*size*size))
	update := func(stop bool) []float32 {
		m, err := NewModel(d, ModelConfig{Arch: "tiny", InChannels: 1, Projector: "16-8", Seed: 9})
		if err != nil {
			t.Fatal(err)
		}
		defer m.Release()
		before, _ := m.Params()[0].Value.Download()
		obj, err := loss.NewBarlowTwins(d, n, 8, materialised)
		if err != nil {
			t.Fatal(err)
		}
		defer obj.Release()
		opt, err := optim.NewSGD(d, m.Params(), optim.SGDConfig{})
		if err != nil {
			t.Fatal(err)
		}
		defer opt.Release()
		tr, err := NewTrainer(d, m, obj, opt, TrainerOptions{Batch: n, Channels: 1, Height: size, Width: size, StopGradB: stop})
		if err != nil {
			t.Fatal(err)
		}
		defer tr.Release()
		if _, err := tr.TwinStep(x, x, 0.1, 0.1); err != nil {
			t.Fatal(err)
		}
		after, err := m.Params()[0].Value.Download()
		if err != nil {
			t.Fatal(err)
		}
		for i := range after {
			after[i] -= before[i]
		}
		return after
	}
	full, half := update(false), update(true)
	want := make([]float64, len(full))
	for i, v := range full {
		want[i] = float64(v) / 2
	}
	if err := ref.Compare(kcheck.To64(half), want, 1e-3); err != nil {
		t.Errorf("stop-gradient update against half the full update: %v", err)
	}
}
