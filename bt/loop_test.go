package bt

import (
	"errors"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/pipeline"
)

// smallRun sets up a run on synthetic 16-pixel grayscale images with the
// tiny backbone, small enough for lavapipe.
type smallRun struct {
	d      *gpu.Device
	model  *Model
	loss   *Loss
	opt    Optimizer
	tr     *Trainer
	loader *pipeline.Loader
	loop   *Loop
}

const smallBatch = 32

func newSmallRun(t *testing.T, epochs, startStep int, ckpt string, every int) *smallRun {
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
	if s.loss, err = NewLoss(d, smallBatch, 32, DefaultLambda, false); err != nil {
		t.Fatal(err)
	}
	if s.opt, err = NewOptimizer("lars", d, s.model.Params(), DefaultOptimizerConfig()); err != nil {
		t.Fatal(err)
	}
	if s.tr, err = NewTrainer(d, s.model, s.loss, s.opt, smallBatch, 1, 16, 16); err != nil {
		t.Fatal(err)
	}
	sched := DefaultSchedule()
	sched.Multiplier, sched.WarmupEpochs = 8, 1
	s.loop = &Loop{Trainer: s.tr, Loader: s.loader, Schedule: sched, Epochs: epochs, Batch: smallBatch,
		CheckpointPath: ckpt, CheckpointEvery: every, Run: RunState{Model: mc}}
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
	var start Stats
	s.loop.Hooks = append(s.loop.Hooks, Hook{Name: "initial stats", Fn: func(_ *Loop, ev Event) error {
		var err error
		if ev.Step == 0 {
			start, err = s.loss.Stats()
		}
		return err
	}})
	if err := s.loop.Execute(); err != nil {
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
	if err := full.loop.Execute(); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(dir, "ckpt.safetensors")
	first := newSmallRun(t, 3, 0, ckpt, 13)
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
	if err := first.loop.Execute(); !errors.Is(err, stop) {
		t.Fatalf("first half: %v", err)
	}
	c, err := LoadCheckpoint(ckpt)
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
	if err := second.loop.Execute(); err != nil {
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

// TestNonFiniteGuard stops at the first non-finite loss, names the step
// and the last good checkpoint, and writes no checkpoint after it.
func TestNonFiniteGuard(t *testing.T) {
	ckpt := filepath.Join(t.TempDir(), "ckpt.safetensors")
	s := newSmallRun(t, 2, 0, ckpt, 2)
	// A learning rate this large overflows the weights within a few steps;
	// the first two steps run at warm-up's lower rates.
	s.loop.Schedule.Multiplier = 1e30
	runErr := s.loop.Execute()
	if !errors.Is(runErr, ErrNonFinite) {
		t.Fatalf("got %v, want a non-finite loss error", runErr)
	}
	if !strings.Contains(runErr.Error(), "at step") || !strings.Contains(runErr.Error(), "checkpoint") {
		t.Errorf("error does not name the step and the checkpoint: %v", runErr)
	}
	c, err := LoadCheckpoint(ckpt)
	if err != nil {
		t.Fatalf("no good checkpoint survived: %v", err)
	}
	m, err := s.model.Params()[0].Value.Download()
	if err != nil {
		t.Fatal(err)
	}
	w, err := c.floats("backbone.conv1.weight", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range w {
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			t.Fatalf("the checkpoint holds non-finite weights (model: %v)", m[0])
		}
	}
	t.Log(runErr)
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

// TestBudgetSchedule: a budgeted run keeps warm-up in real epochs and ends
// at the schedule's final rate.
func TestBudgetSchedule(t *testing.T) {
	s := newSmallRun(t, 100, 0, "", 0) // 10 steps per epoch
	s.loop.MaxSteps = 40
	s.loop.Schedule = DefaultSchedule()
	s.loop.Schedule.WarmupEpochs = 2
	if s.loop.Steps() != 40 {
		t.Fatalf("Steps %d, want 40", s.loop.Steps())
	}
	base := float64(smallBatch) / 256
	for _, tc := range []struct {
		step int
		want float64
	}{{0, 0}, {10, base / 2}, {20, base}, {40, base * 0.001}} {
		w, _ := s.loop.LR(tc.step)
		if math.Abs(float64(w)-0.2*tc.want) > 1e-6 {
			t.Errorf("step %d: lr %v, want %v", tc.step, w, 0.2*tc.want)
		}
	}
}
