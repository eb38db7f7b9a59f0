package train

import (
	"bytes"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/internal/gputest"
)

// TestBackboneRoundTrip exports a backbone with torchvision's names and
// loads it into a differently initialised model, as a torchvision state
// dict converted to safetensors would be loaded.
func TestBackboneRoundTrip(t *testing.T) {
	d := gputest.Device(t)
	path := filepath.Join(t.TempDir(), "backbone.safetensors")
	a, err := NewModel(d, ModelConfig{Arch: "resnet18", InChannels: 3, Projector: "16", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	data := DataConfig{Name: "cifar10", Augment: "cifar", Size: 32}
	if err := ExportBackbone(path, a, data); err != nil {
		t.Fatal(err)
	}
	c, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.Model != a.Config || c.Data != data {
		t.Errorf("the export's settings read back as %+v, %+v; want %+v, %+v", c.Model, c.Data, a.Config, data)
	}
	for _, name := range []string{"conv1.weight", "bn1.running_var", "layer4.1.conv2.weight", "layer2.0.downsample.0.weight", "layer2.0.downsample.1.bias"} {
		if _, ok := c.tensors[name]; !ok {
			t.Errorf("export lacks torchvision's %q", name)
		}
	}
	b, err := NewModel(d, ModelConfig{Arch: "resnet18", InChannels: 3, Projector: "16", Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Release()
	if err := c.RestoreBackbone(b); err != nil {
		t.Fatal(err)
	}
	sameBackbone := func(how string, b *Model) {
		t.Helper()
		sa, sb := a.State(), b.State()
		for i := range sa {
			if !strings.HasPrefix(sa[i].Name, "backbone.") {
				continue
			}
			va, _ := sa[i].Tensor.Download()
			vb, _ := sb[i].Tensor.Download()
			if !slices.Equal(va, vb) {
				t.Fatalf("%s: %s differs after the round trip", how, sa[i].Name)
			}
		}
	}
	sameBackbone("RestoreBackbone", b)
	if err := c.Restore(b, nil); err == nil || !strings.Contains(err.Error(), "projector") {
		t.Errorf("restoring a whole model from a bare backbone: %v", err)
	}
	// Backbone builds the network the file records and loads it: a's
	// weights, whatever the seed of the initialisation they replace.
	c.Model.Seed = 3
	m, err := c.Backbone(d)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	sameBackbone("Backbone", m)
	c.Model.Arch = ""
	if _, err := c.Backbone(d); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a file that records no network: %v", err)
	}
}

// TestBadCheckpoints: a file that is not safetensors, and one whose
// tensors do not fit the model, give errors naming the file and the
// problem; nothing is half loaded silently.
func TestBadCheckpoints(t *testing.T) {
	d := gputest.Device(t)
	dir := t.TempDir()
	junk := filepath.Join(dir, "junk.safetensors")
	if err := os.WriteFile(junk, []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCheckpoint(junk); err == nil || !strings.Contains(err.Error(), junk) {
		t.Errorf("junk file: %v", err)
	}
	if _, err := LoadCheckpoint(filepath.Join(dir, "missing")); err == nil {
		t.Error("a missing file loaded")
	}
	small, err := NewModel(d, ModelConfig{Arch: "tiny", InChannels: 1, Projector: "16", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer small.Release()
	path := filepath.Join(dir, "tiny.safetensors")
	if err := SaveCheckpoint(path, small, nil, RunState{Config: Config{Model: small.Config}}); err != nil {
		t.Fatal(err)
	}
	other, err := NewModel(d, ModelConfig{Arch: "tiny", InChannels: 3, Projector: "16", Seed: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	c, err := LoadCheckpoint(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Restore(other, nil); err == nil || !strings.Contains(err.Error(), "conv1.weight") || !strings.Contains(err.Error(), "shape") {
		t.Errorf("a 1-channel checkpoint into a 3-channel model: %v", err)
	}
	opt, err := optim.New("lars", d, small.Params(), optim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Release()
	if err := c.Restore(small, opt); err == nil || !strings.Contains(err.Error(), "optimiser") {
		t.Errorf("resuming from a checkpoint without optimiser state: %v", err)
	}
}

// TestContinues checks which configurations continue a checkpoint's run:
// the run's own, extended, augmented elsewhere or left open where the data
// decides; and that any other one is refused with the differing settings
// named.
func TestContinues(t *testing.T) {
	run := DefaultConfig()
	run.Model.Stem, run.Model.InChannels, run.Data.Augment = "cifar", 3, "cifar"
	run.Data.Validation = Validation{Fraction: 0.1, Seed: 2, Images: 6000}
	c := &Checkpoint{Path: "run/checkpoint.safetensors", State: RunState{Config: run, Step: 40}, Opt: &optim.State{}}
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   func(*Config) // the continuing configuration, from the run's
		refuse string        // the error names these; "" when continued
	}{
		{"the run's own", func(*Config) {}, func(*Config) {}, ""},
		{"extended", func(c *Config) { c.Epochs, c.Steps = 20, 5000 }, func(c *Config) { c.Epochs, c.Steps = 20, 5000 }, ""},
		{"augmented elsewhere", func(c *Config) { c.Data.Workers, c.Data.AugmentOn = 3, "cpu" }, func(c *Config) { c.Data.Workers, c.Data.AugmentOn = 3, "cpu" }, ""},
		{"left to the data", func(c *Config) {
			c.Model.Stem, c.Model.InChannels, c.Data.Augment, c.Data.Validation.Images = "", 0, "", 0
		}, func(*Config) {}, ""},
		{"another validation split", func(c *Config) { c.Data.Validation = Validation{Fraction: 0.2, Seed: 2} }, nil, "Data.Validation.Fraction"},
		{"no validation split", func(c *Config) { c.Data.Validation = Validation{} }, nil, "Data.Validation.Fraction, Data.Validation.Seed"},
		{"another rate", func(c *Config) { c.Schedule.Multiplier *= 2 }, nil, "Schedule.Multiplier"},
		{"another seed and lambda", func(c *Config) { c.Seed++; c.Loss.Lambda = 0.1 }, nil, "Loss.Lambda, Seed"},
		{"another stem", func(c *Config) { c.Model.Stem = "imagenet" }, nil, "Model.Stem"},
	} {
		cfg := run
		tc.change(&cfg)
		got, err := c.Continues(cfg)
		if tc.refuse != "" {
			if err == nil || !strings.Contains(err.Error(), "its "+tc.refuse+" differ") {
				t.Errorf("%s: got %v, want an error naming %s", tc.name, err, tc.refuse)
			}
			continue
		}
		want := run
		tc.want(&want)
		if err != nil || got != want {
			t.Errorf("%s: got %+v, %v; want %+v", tc.name, got, err, want)
		}
	}
	weights := &Checkpoint{Path: "backbone.safetensors", Model: run.Model}
	if _, err := weights.Continues(run); err == nil || !strings.Contains(err.Error(), "no run to continue") {
		t.Errorf("a backbone-only file: got %v, want an error", err)
	}
}

// TestSaveOverOpenCheckpoint: a reader holding the newest checkpoint open
// (bt eval reading it, a copy, a virus scanner) while the run saves the
// next one does not stop the run. On Windows, where an open file can be
// neither replaced nor removed, the save waits for the reader to close it.
func TestSaveOverOpenCheckpoint(t *testing.T) {
	d := gputest.Device(t)
	mc := ModelConfig{Arch: "tiny", InChannels: 1, Projector: "32-32-32", Seed: 7}
	m, err := NewModel(d, mc)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	opt, err := optim.New("lars", d, m.Params(), optim.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer opt.Release()
	c := Checkpoints{Dir: t.TempDir(), Keep: 1}
	st := RunState{Config: Config{Model: mc}, Step: 1}
	if _, err := c.Save(m, opt, st); err != nil {
		t.Fatal(err)
	}
	r, err := os.Open(filepath.Join(c.Dir, Latest))
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan error)
	go func() {
		time.Sleep(300 * time.Millisecond)
		closed <- r.Close()
	}()
	st.Step = 2
	_, err = c.Save(m, opt, st)
	if cerr := <-closed; cerr != nil {
		t.Fatal(cerr)
	}
	if err != nil {
		t.Fatalf("saving step 2 while step 1's checkpoint was open: %v", err)
	}
	if steps, err := c.Steps(); err != nil || !slices.Equal(steps, []int{2}) {
		t.Errorf("checkpoints of steps %v (%v), want only step 2's", steps, err)
	}
	latest, err := os.ReadFile(filepath.Join(c.Dir, Latest))
	if err != nil {
		t.Fatal(err)
	}
	if two, err := os.ReadFile(c.Path(2)); err != nil || !bytes.Equal(latest, two) {
		t.Errorf("%s is not step 2's checkpoint (%v)", Latest, err)
	}
}
