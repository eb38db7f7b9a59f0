package train

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/bt-org/bt/augment"
	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/pipeline"
	"github.com/bt-org/bt/trace"
)

// Event is what the loop tells its hooks after a step's loss has arrived.
type Event struct {
	Step       int         // the step whose loss this is, counted from the start of training
	Steps      int         // steps in the whole run
	Epoch      int         // epoch of that step
	Loss       float32     // its loss
	Terms      *loss.Stats // the Barlow Twins loss's terms and C's figures; nil for other objectives
	Spread     *Spread     // its embeddings' spread; nil where the objective keeps no scales
	LRWeights  float32     // learning rates it used
	LRVectors  float32
	PairsPerS  float64 // throughput since the loop started
	Elapsed    time.Duration
	Checkpoint string // latest checkpoint written, "" if none yet
}

// Hook is a named action run every Every steps (every step when Every is
// 0), and once more after the last step when AtEnd is set.
type Hook struct {
	Name  string
	Every int
	AtEnd bool
	Fn    func(l *Loop, ev Event) error
}

// Loop drives a Trainer over a Loader: the learning-rate schedule, a guard
// that stops at the first non-finite loss, checkpoints, and named hooks for
// everything else (logging, evaluation, plots).
type Loop struct {
	Trainer *Trainer
	Loader  *pipeline.Loader
	// Augment, for a raw loader (pipeline.LoaderConfig.Raw), renders each
	// batch's views on the device in the step's recording; nil when the
	// loader augments.
	Augment  *augment.Augmenter
	Schedule optim.Schedule
	Epochs   int // the run's length; the schedule spans it
	// MaxSteps, when positive and shorter, ends the run after that many
	// steps instead, with the whole schedule compressed to span it (warm-up
	// the same share of it): a budget for demos and ablations.
	MaxSteps int
	Batch    int
	// CheckpointDir and CheckpointEvery make the loop save every so many
	// steps and at the end (see Checkpoints); Keep is how many it keeps
	// (0: DefaultKeep). Run is the state saved beside the tensors.
	CheckpointDir   string
	CheckpointEvery int
	Keep            int
	Run             RunState
	Hooks           []Hook
	// Comm, over several ranks, makes the ranks stop together: at the
	// same step when one is asked to, and with the same error when one
	// fails between steps (loading its share, a hook). nil: one process.
	Comm dist.Comm
	// TraceSteps are the steps traced when the trainer's device has a
	// trace (gpu.Device.SetTrace): each step's data wait, recording,
	// submission, readbacks, hooks and checkpoint on the host, and its
	// dispatches on the device. The zero window traces every step.
	TraceSteps trace.Window

	lastCheckpoint string
	lastSaved      int // the step of lastCheckpoint
	first          int // the step Execute started from
	lastGood       int
}

// Steps is the number of steps in the whole run.
func (l *Loop) Steps() int {
	full := l.Epochs * l.Loader.StepsPerEpoch()
	if l.MaxSteps > 0 && l.MaxSteps < full {
		return l.MaxSteps
	}
	return full
}

// LR is the schedule's learning rates for a step.
func (l *Loop) LR(step int) (float32, float32) {
	total := l.Steps()
	return l.Schedule.LR(step, l.Schedule.Warmup.Steps(total, l.Epochs), total, l.Batch)
}

// ErrNonFinite is wrapped by the error Execute returns when a loss, or a
// tensor about to be checkpointed, is NaN or infinite.
var ErrNonFinite = errors.New("non-finite values")

// Execute trains until the loader is exhausted or the run's steps are
// done, starting from the trainer's current step. When ctx ends first (the
// CLI's Ctrl-C), it finishes the step in flight, writes a checkpoint if
// the loop has a directory, and returns an error wrapping ctx's.
func (l *Loop) Execute(ctx context.Context) error {
	start := time.Now()
	first := l.Trainer.Step
	l.first = first
	total := l.Steps()
	l.lastGood = first - 1
	tr := l.Trainer.d.Trace()
	handle := func(sl *StepLoss, end bool) error {
		if sl == nil {
			return nil
		}
		if math.IsNaN(float64(sl.Loss)) || math.IsInf(float64(sl.Loss), 0) {
			return fmt.Errorf("train: the loss is %v at step %d (%w); %s", sl.Loss, sl.Step, ErrNonFinite, l.advice())
		}
		l.lastGood = sl.Step
		lrW, lrV := l.LR(sl.Step)
		el := time.Since(start)
		ev := Event{Step: sl.Step, Steps: total, Epoch: sl.Step / l.Loader.StepsPerEpoch(), Loss: sl.Loss, Terms: sl.Terms, Spread: sl.Spread,
			LRWeights: lrW, LRVectors: lrV, Elapsed: el, Checkpoint: l.lastCheckpoint,
			PairsPerS: float64((sl.Step-first+1)*l.Batch) / el.Seconds()}
		for _, h := range l.Hooks {
			if (h.Every <= 1 || (sl.Step+1)%h.Every == 0) || (end && h.AtEnd) {
				span := tr.Begin("hook " + h.Name)
				err := h.Fn(l, ev)
				span.End()
				if err != nil {
					return fmt.Errorf("train: hook %s at step %d: %w", h.Name, sl.Step, err)
				}
			}
		}
		return nil
	}
	comm := l.Comm
	if comm == nil {
		comm = dist.Single{}
	}
	defer tr.SetActive(false)
	stopped := func() error {
		if l.CheckpointDir != "" && l.Trainer.Step > first {
			if err := l.checkpoint(handle); err != nil {
				return err
			}
		}
		cause := context.Cause(ctx)
		if cause == nil {
			cause = errors.New("another rank was stopped")
		}
		return fmt.Errorf("train: stopped at step %d (%w); %s", l.Trainer.Step, cause, l.resumeHint())
	}
	for l.Trainer.Step < total {
		tr.SetActive(l.TraceSteps.Contains(l.Trainer.Step))
		span := tr.Begin("step", trace.Arg{Key: "step", Value: l.Trainer.Step})
		stop, err := dist.Any(comm, ctx.Err() != nil)
		if err != nil {
			return err
		}
		if stop {
			return stopped()
		}
		// The wait for the batch ends with ctx too, so a read that never
		// returns (a named pipe, a stuck mount) does not hold up Ctrl-C.
		data := tr.Begin("data wait")
		b, err := l.Loader.NextContext(ctx)
		data.End()
		if err == io.EOF {
			break
		}
		if err != nil && ctx.Err() != nil && comm.Size() == 1 {
			return stopped()
		}
		if err = dist.Agree(comm, err); err != nil {
			// The steps done so far are sound: keep them, so that a run
			// stopped by a bad image resumes once it is fixed.
			return l.keepAfter(handle, err)
		}
		lrW, lrV := l.LR(l.Trainer.Step)
		var sl *StepLoss
		if l.Augment != nil {
			sl, err = l.Trainer.RawStep(l.Augment, b, lrW, lrV)
		} else {
			sl, err = l.Trainer.TwinStep(b.A, b.B, lrW, lrV)
		}
		l.Loader.Recycle(b)
		if err != nil {
			return err
		}
		if err := dist.Agree(comm, handle(sl, false)); err != nil {
			return err
		}
		if l.CheckpointDir != "" && l.CheckpointEvery > 0 && l.Trainer.Step%l.CheckpointEvery == 0 && l.Trainer.Step < total {
			if err := l.checkpoint(handle); err != nil {
				return err
			}
		}
		span.End()
	}
	if l.CheckpointDir != "" {
		return l.checkpoint(handle)
	}
	sl, err := l.Trainer.Flush()
	if err != nil {
		return err
	}
	return handle(sl, true)
}

// keepAfter checkpoints the steps done before err, a failure that leaves
// them sound (the data), when there is a directory and any step has been
// done since the last checkpoint, and returns err naming the checkpoint to
// resume from.
func (l *Loop) keepAfter(handle func(*StepLoss, bool) error, err error) error {
	if l.CheckpointDir != "" && l.Trainer.Step > l.first && !(l.lastCheckpoint != "" && l.lastSaved == l.Trainer.Step) {
		if cerr := l.checkpoint(handle); cerr != nil {
			return fmt.Errorf("%w (and then: %v)", err, cerr)
		}
	}
	if l.lastCheckpoint == "" {
		return err
	}
	return fmt.Errorf("%w; %s", err, l.resumeHint())
}

// resumeHint names the checkpoint a stopped run continues from.
func (l *Loop) resumeHint() string {
	if l.lastCheckpoint == "" {
		return "no checkpoint was written"
	}
	return "resume from " + l.lastCheckpoint
}

// advice is what the guard tells the user to do, naming the newest
// checkpoint that passed its finite check.
func (l *Loop) advice() string {
	where := "no checkpoint has been written"
	if l.lastCheckpoint != "" {
		where = "the last good checkpoint is " + l.lastCheckpoint
	}
	return where + ". Lower the learning rate, check the data for broken images, or resume from the checkpoint"
}

// checkpoint waits for the step in flight, checks its loss like any other,
// and only then saves, so a checkpoint never holds weights from a step whose
// loss was not finite; SaveCheckpoint refuses non-finite weights too.
func (l *Loop) checkpoint(handle func(*StepLoss, bool) error) error {
	defer l.Trainer.d.Trace().Begin("checkpoint").End()
	sl, err := l.Trainer.Flush()
	if err != nil {
		return err
	}
	done := l.Trainer.Step >= l.Steps()
	if err := handle(sl, done); err != nil {
		return err
	}
	st := l.Run
	st.Step = l.Trainer.Step
	path, err := Checkpoints{Dir: l.CheckpointDir, Keep: l.Keep}.Save(l.Trainer.Model, l.Trainer.Opt, st)
	if errors.Is(err, ErrNonFinite) {
		return fmt.Errorf("%w; %s", err, l.advice())
	}
	if err != nil {
		// A full disk, say: the earlier checkpoints are still whole.
		return fmt.Errorf("train: the checkpoint of step %d was not written: %w; %s", st.Step, err, l.resumeHint())
	}
	l.lastCheckpoint = fmt.Sprintf("%s (step %d)", path, st.Step)
	l.lastSaved = st.Step
	return nil
}
