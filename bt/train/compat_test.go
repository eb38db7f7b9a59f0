package train

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/strictjson"
	"github.com/bt-org/bt/pipeline"
)

// compatConfig is the configuration of testdata/compat_config.json and of
// the run in testdata/compat_checkpoint.safetensors, both written by bt
// pretrain -data synthetic -steps 1 -batch 8 -projector 16-16 -optimizer
// sgd -augment cifar -augment-without crop -augment-on cpu -precision f32
// -workers 1 before the settings were typed.
func compatConfig() Config {
	sched := optim.DefaultSchedule()
	sched.Multiplier, sched.Warmup = 32, optim.Warmup{Value: 0.05, Unit: optim.WarmupFraction}
	return Config{
		Data: DataConfig{Name: "synthetic", Augment: "cifar", Without: "crop", CropMin: 0.4,
			MaxBadFraction: pipeline.DefaultMaxBadFraction, MaxPixels: pipeline.DefaultMaxPixels, Workers: 1, AugmentOn: "cpu"},
		Model:     ModelConfig{Arch: "tiny", Stem: "small", InChannels: 3, Projector: "16-16", Seed: 1},
		Loss:      loss.Options{Lambda: 0.0051, Scale: 1, Norm: loss.BatchNorm, Path: loss.Auto},
		Precision: "f32", Optimizer: "sgd", WeightDecay: 1.5e-6, Schedule: sched,
		Batch: 8, Epochs: 100, Steps: 1, Seed: 1,
	}
}

// TestLoadsEarlierFiles checks that a config.json and a checkpoint written
// by an earlier bt load to the settings they were written with, that
// settings absent from files older still ("" precision and augmentation
// place) mean f32 and auto, and that a configuration is written back in
// the same text.
func TestLoadsEarlierFiles(t *testing.T) {
	want := compatConfig()
	legacy := want
	legacy.Precision, legacy.Data.AugmentOn = "", ""
	for _, tc := range []struct {
		file string
		want Config
	}{{"compat_config.json", want}, {"compat_config_legacy.json", legacy}} {
		b, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		var got Config
		if err := strictjson.Decode(b, &got); err != nil {
			t.Fatalf("%s: %v", tc.file, err)
		}
		if got != tc.want {
			t.Errorf("%s loads to\n%+v\nwant\n%+v", tc.file, got, tc.want)
		}
		if err := got.Validate(); err != nil {
			t.Errorf("%s: %v", tc.file, err)
		}
		out, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if string(out)+"\n" != string(b) {
			t.Errorf("%s is written back as\n%s", tc.file, out)
		}
	}
	if legacy.Activations() != gpu.F32 || legacy.GradScale() != 1 {
		t.Errorf("precision \"\": activations %v, loss scale %g; want f32 and 1", legacy.Activations(), legacy.GradScale())
	}
	for _, kind := range []string{"CPU", "DiscreteGPU"} {
		d := &gpu.Device{Info: gpu.AdapterInfo{Type: kind}}
		if got, auto := legacy.Data.OnDevice(d), DefaultConfig().Data.OnDevice(d); got != auto || got == (kind == "CPU") {
			t.Errorf("augment on \"\" on a %s adapter: on the device %v; auto: %v", kind, got, auto)
		}
	}
	c, err := LoadCheckpoint(filepath.Join("testdata", "compat_checkpoint.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Config != want || c.State.Step != 1 || c.Opt == nil || c.Model != want.Model || c.Data != want.Data {
		t.Errorf("checkpoint: config %+v, step %d, optimiser state %v; want %+v at step 1 with state", c.State.Config, c.State.Step, c.Opt != nil, want)
	}
	if _, err := c.Continues(want); err != nil {
		t.Errorf("the checkpoint's own settings do not continue it: %v", err)
	}
}
