package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/pipeline"
)

// smallRun sets up a run on synthetic 16-pixel grayscale images with the
// tiny backbone, small enough for lavapipe.
type smallRun struct {
	d      *gpu.Device
	model  *Model
	loss   *loss.BarlowTwins
	opt    optim.Optimizer
	tr     *Trainer
	loader *pipeline.Loader
	loop   *Loop
}

const smallBatch = 32

// materialised is the paper's loss on the path that forms C.
var materialised = func() loss.Options {
	o := loss.DefaultOptions()
	o.Path = loss.Materialised
	return o
}()

func newSmallRun(t *testing.T, epochs, startStep int, ckptDir string, every int) *smallRun {
	t.Helper()
	d := gputest.Device(t)
	ds, err := pipeline.NewSynthetic(pipeline.SyntheticConfig{Count: 320, Size: 16, Channels: 1, Classes: 10, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	aug, err := pipeline.Preset("fashion-mnist")
	if err != nil {
		t.Fatal(err)
	}
	aug.A.Size, aug.B.Size = 16, 16
	s := &smallRun{d: d}
	spe := ds.Len() / smallBatch
	s.loader, err = pipeline.NewLoader(ds, aug, pipeline.LoaderConfig{BatchSize: smallBatch, Workers: 2, Seed: 5, Shuffle: true, DropLast: true,
		Epoch: startStep / spe, Step: startStep % spe})
	if err != nil {
		t.Fatal(err)
	}
	mc := ModelConfig{Arch: "tiny", InChannels: 1, Projector: "32-32-32", Seed: 7}
	if s.model, err = NewModel(d, mc); err != nil {
		t.Fatal(err)
	}
	if s.loss, err = loss.NewBarlowTwins(d, smallBatch, 32, materialised); err != nil {
		t.Fatal(err)
	}
	if s.opt, err = optim.New("lars", d, s.model.Params(), optim.DefaultConfig()); err != nil {
		t.Fatal(err)
	}
	if s.tr, err = NewTrainer(d, s.model, s.loss, s.opt, TrainerOptions{Batch: smallBatch, Channels: 1, Height: 16, Width: 16}); err != nil {
		t.Fatal(err)
	}
	sched := optim.DefaultSchedule()
	sched.Multiplier, sched.Warmup = 8, optim.Warmup{Value: 1, Unit: optim.WarmupEpochs}
	s.loop = &Loop{Trainer: s.tr, Loader: s.loader, Schedule: sched, Epochs: epochs, Batch: smallBatch,
		CheckpointDir: ckptDir, CheckpointEvery: every, Run: RunState{Config: Config{Model: mc}}}
	t.Cleanup(s.release)
	return s
}

func (s *smallRun) release() {
	s.loader.Close()
	s.tr.Release()
	s.opt.Release()
	s.loss.Release()
	s.model.Release()
}

// record adds a hook that collects every step's loss.
func (s *smallRun) record() *[]float32 {
	var losses []float32
	s.loop.Hooks = append(s.loop.Hooks, Hook{Name: "record", Fn: func(_ *Loop, ev Event) error {
		losses = append(losses, ev.Loss)
		return nil
	}})
	return &losses
}

// TestTrainingLearns runs 200 steps: the loss must fall by half and the
// mean of C's diagonal must climb towards 1 (the two views' embeddings
// agree), from near 0 at initialisation.
func TestTrainingLearns(t *testing.T) {
	s := newSmallRun(t, 20, 0, "", 0)
	losses := s.record()
	var start loss.Stats
	s.loop.Hooks = append(s.loop.Hooks, Hook{Name: "initial stats", Fn: func(_ *Loop, ev Event) error {
		var err error
		if ev.Step == 0 {
			start, err = s.loss.Stats()
		}
		return err
	}})
	if err := s.loop.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	end, err := s.loss.Stats()
	if err != nil {
		t.Fatal(err)
	}
	l := *losses
	if len(l) != 200 {
		t.Fatalf("%d losses, want 200", len(l))
	}
	mean := func(v []float32) float64 {
		s := 0.0
		for _, x := range v {
			s += float64(x)
		}
		return s / float64(len(v))
	}
	first, last := mean(l[:10]), mean(l[190:])
	t.Logf("loss %.2f → %.2f; mean C_ii %.3f → %.3f; mean |C_ij| %.3f → %.3f", first, last, start.MeanDiag, end.MeanDiag, start.MeanAbsOff, end.MeanAbsOff)
	if !(last < 0.5*first) {
		t.Errorf("loss fell from %.2f to %.2f, less than half", first, last)
	}
	if !(end.MeanDiag > 0.7 && end.MeanDiag > start.MeanDiag+0.3) {
		t.Errorf("mean on-diagonal C went from %.3f to %.3f; want above 0.7 and a rise of at least 0.3", start.MeanDiag, end.MeanDiag)
	}
}

// TestResume checks that a run stopped at a checkpoint and resumed gives
// the uninterrupted run's losses exactly.
func TestResume(t *testing.T) {
	dir := t.TempDir()
	full := newSmallRun(t, 3, 0, "", 0)
	want := full.record()
	if err := full.loop.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	first := newSmallRun(t, 3, 0, dir, 13)
	got := first.record()
	first.loop.Epochs = 3
	// Stop right after the checkpoint at step 13, as a crash would.
	stop := errors.New("stop")
	first.loop.Hooks = append(first.loop.Hooks, Hook{Name: "stop", Fn: func(_ *Loop, ev Event) error {
		if ev.Step == 13 {
			return stop
		}
		return nil
	}})
	if err := first.loop.Execute(context.Background()); !errors.Is(err, stop) {
		t.Fatalf("first half: %v", err)
	}
	c, err := LoadCheckpoint(filepath.Join(dir, Latest))
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Step != 13 {
		t.Fatalf("checkpoint at step %d, want 13", c.State.Step)
	}
	second := newSmallRun(t, 3, c.State.Step, "", 0)
	if err := c.Restore(second.model, second.opt); err != nil {
		t.Fatal(err)
	}
	second.tr.Step = c.State.Step
	rest := second.record()
	if err := second.loop.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	all := append((*got)[:13:13], *rest...)
	if len(all) != len(*want) {
		t.Fatalf("resumed run has %d losses, the uninterrupted one %d", len(all), len(*want))
	}
	for i := range all {
		if all[i] != (*want)[i] {
			t.Errorf("step %d: resumed loss %v, uninterrupted %v", i, all[i], (*want)[i])
		}
	}
}

// TestNonFiniteGuard stops at the first non-finite loss or weight, names
// the step and the last good checkpoint, and that checkpoint is there, loads
// and holds only finite values; no checkpoint is written after it.
func TestNonFiniteGuard(t *testing.T) {
	dir := t.TempDir()
	s := newSmallRun(t, 2, 0, dir, 2)
	// A learning rate this large overflows the weights within a few steps;
	// the first two steps run at warm-up's lower rates.
	s.loop.Schedule.Multiplier = 1e30
	runErr := s.loop.Execute(context.Background())
	if !errors.Is(runErr, ErrNonFinite) {
		t.Fatalf("got %v, want a non-finite error", runErr)
	}
	t.Log(runErr)
	named := regexp.MustCompile(`last good checkpoint is (\S+\.safetensors) \(step (\d+)\)`).FindStringSubmatch(runErr.Error())
	if named == nil || !strings.Contains(runErr.Error(), "at step") {
		t.Fatalf("error does not name the step and the last good checkpoint: %v", runErr)
	}
	c, err := LoadCheckpoint(named[1])
	if err != nil {
		t.Fatalf("the named checkpoint does not load: %v", err)
	}
	if fmt.Sprint(c.State.Step) != named[2] {
		t.Errorf("%s holds step %d, the error says %s", named[1], c.State.Step, named[2])
	}
	for name, tv := range c.tensors {
		v, err := c.floats(name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if bad := countNonFinite(v); bad > 0 {
			t.Errorf("%s: %s holds %d non-finite values (shape %v)", named[1], name, bad, tv.Shape())
		}
	}
	latest, err := LoadCheckpoint(filepath.Join(dir, Latest))
	if err != nil || latest.State.Step != c.State.Step {
		t.Errorf("%s is not the named checkpoint: %v", Latest, err)
	}
}

// TestCrossCorrelation: identical views correlate perfectly with
// themselves; the diagonal of C is 1 up to eps.
func TestCrossCorrelation(t *testing.T) {
	z := []float32{1, 2, 3, -1, 0, 5, 2, 2, -4, 0, 1, 1}
	c := CrossCorrelation(z, z, 4, 3, 3)
	for i := range 3 {
		if math.Abs(c[i*3+i]-1) > 1e-4 {
			t.Errorf("C[%d][%d] = %v, want 1", i, i, c[i*3+i])
		}
	}
	if c[1] != c[3] {
		t.Errorf("C of identical views is not symmetric: %v vs %v", c[1], c[3])
	}
}

// TestBudgetSchedule: a budgeted run warms up over the same share of its
// steps as the full schedule does, reaches the peak rate, and ends at the
// schedule's final rate.
func TestBudgetSchedule(t *testing.T) {
	s := newSmallRun(t, 100, 0, "", 0) // 10 steps per epoch
	s.loop.MaxSteps = 40
	s.loop.Schedule = optim.DefaultSchedule()
	s.loop.Schedule.Warmup = optim.Warmup{Value: 20, Unit: optim.WarmupEpochs} // a fifth of the schedule: 8 of the 40 steps
	if s.loop.Steps() != 40 {
		t.Fatalf("Steps %d, want 40", s.loop.Steps())
	}
	base := float64(smallBatch) / 256
	floor := base * 0.001
	// q at the last step: ½(1 + cos(π·31/32)).
	last := 0.5 * (1 + math.Cos(math.Pi*31/32))
	for _, tc := range []struct {
		step int
		want float64
	}{{0, 0}, {4, base / 2}, {8, base}, {24, (base + floor) / 2}, {39, base*last + floor*(1-last)}, {40, floor}} {
		w, _ := s.loop.LR(tc.step)
		if math.Abs(float64(w)-0.2*tc.want) > 1e-6 {
			t.Errorf("step %d: lr %v, want %v", tc.step, w, 0.2*tc.want)
		}
	}
}

// TestNonFiniteWeights: one NaN weight reaches the loss (ReLU and the fused
// BatchNorm-ReLU pass NaN on, as PyTorch's do, where max(x, 0) would hide
// it), so the guard stops at the very first step.
func TestNonFiniteWeights(t *testing.T) {
	s := newSmallRun(t, 1, 0, "", 0)
	w := s.model.Params()[0]
	v, err := w.Value.Download()
	if err != nil {
		t.Fatal(err)
	}
	v[0] = float32(math.NaN())
	if err := w.Value.Upload(v); err != nil {
		t.Fatal(err)
	}
	s.loop.MaxSteps = 3
	err = s.loop.Execute(context.Background())
	if !errors.Is(err, ErrNonFinite) || !strings.Contains(err.Error(), "at step 0 ") {
		t.Fatalf("a NaN in %s: got %v, want the guard to stop at step 0", w.Name, err)
	}
}

// TestStepTerms: every step's event carries the loss's terms and C's
// figures, read back with its loss: after the run, the last event's are
// the loss's own Stats of the last step.
func TestStepTerms(t *testing.T) {
	s := newSmallRun(t, 1, 0, "", 0)
	s.loop.MaxSteps = 3
	var last *loss.Stats
	n := 0
	s.loop.Hooks = append(s.loop.Hooks, Hook{Name: "terms", Fn: func(_ *Loop, ev Event) error {
		if ev.Terms == nil || ev.Terms.Loss != ev.Loss {
			return fmt.Errorf("step %d: terms %+v for loss %v", ev.Step, ev.Terms, ev.Loss)
		}
		last, n = ev.Terms, n+1
		return nil
	}})
	if err := s.loop.Execute(context.Background()); err != nil {
		t.Fatal(err)
	}
	want, err := s.loss.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if n != 3 || *last != want {
		t.Errorf("%d events; the last step's terms %+v, the loss's Stats %+v", n, *last, want)
	}
}
