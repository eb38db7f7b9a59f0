package train

import (
	"errors"
	"fmt"
	"strings"

	"github.com/bt-org/bt/augment"
	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/pipeline"
)

// Options are how a run is carried out, as opposed to what it trains
// (Config): none of them changes a step's result.
type Options struct {
	// CheckpointDir, CheckpointEvery and Keep: see Loop. No checkpoints
	// when CheckpointDir is "".
	CheckpointDir   string
	CheckpointEvery int
	Keep            int
	// MemoryBudget, in bytes, is checked against the step's memory plan;
	// 0 checks only the adapter's per-buffer limit.
	MemoryBudget int64
	// OnSkip hears of each bad image the loader skips (Config.Data.SkipBad).
	OnSkip func(pipeline.Skip)
	// Comm, a group of several processes (package dist), makes this one
	// rank of a data-parallel run: it trains its share of every global
	// batch of Config.Batch pairs, and every rank's step equals the one
	// process's step over the whole batch. Every rank builds the run from
	// the same Config; only rank 0 should be given a CheckpointDir. nil:
	// one process.
	Comm dist.Comm
	// Exchange is how the ranks share the loss (see Exchange);
	// AutoExchange chooses by bytes. It must be AutoExchange in one
	// process.
	Exchange Exchange
}

// Run is a pretraining run built from a Config: its data, network,
// objective, optimiser, trainer and loop, ready for Loop.Execute.
type Run struct {
	Config    Config // resolved
	Note      string // what New chose that the Config did not say, for the user; "" if nothing
	Plan      MemoryPlan
	Exchange  Exchange // how the ranks share the loss; AutoExchange in one process
	Data      pipeline.Dataset
	Dataset   pipeline.Fingerprint // of Data, compared across ranks and recorded in checkpoints
	Views     pipeline.Config
	Loader    *pipeline.Loader
	Augment   *augment.Augmenter // renders the views on the device (Data.AugmentOn); nil when the loader does
	Model     *Model
	Objective loss.Objective
	Loss      *loss.BarlowTwins // the Barlow Twins objective, for its Stats; nil with InfoNCE
	Opt       optim.Optimizer
	Trainer   *Trainer
	Loop      *Loop

	released []func()
}

// New builds a run from cfg on d, starting from the initialisation. It
// resolves cfg (Config.Resolve) once, before it opens the data, and
// builds everything from the Resolved; only when the data decide the
// preset (an image folder of small images given none) is the
// configuration with that preset resolved again.
func New(d *gpu.Device, cfg Config, o Options) (*Run, error) {
	return agreed(build(d, cfg, o, nil))
}

// ErrEnded is wrapped by Resume's error when the checkpoint is at the end
// of its run: there is nothing left to train.
var ErrEnded = errors.New("the run has ended")

// Resume builds the run a checkpoint belongs to and restores its weights,
// optimiser state and position, so that Execute continues it exactly.
// cfg is the checkpoint's configuration, extended or left open where
// Checkpoint.Continues allows; anything else that differs is an error.
func Resume(d *gpu.Device, c *Checkpoint, cfg Config, o Options) (*Run, error) {
	cfg, err := c.Continues(cfg)
	if err != nil {
		return agreed(nil, o, err)
	}
	return agreed(build(d, cfg, o, c))
}

// agreed makes a rank's failure to build the run every rank's, so that
// none waits in a step for one that gave up, and then checks that every
// rank starts from the same weights (a resume reads the checkpoint on
// each). Every rank calls the same collectives in the same order whatever
// failed where: first the agreement on building, then, only once every
// rank has built, the comparison and the agreement on it.
func agreed(r *Run, o Options, err error) (*Run, error) {
	if o.Comm == nil || o.Comm.Size() == 1 {
		return r, err
	}
	if err = dist.Agree(o.Comm, err); err == nil {
		werr := sameWeights(o.Comm, r.Model)
		err = dist.Agree(o.Comm, errors.Join(sameData(o.Comm, r.Dataset), werr))
	}
	if err != nil {
		if r != nil {
			r.Release()
		}
		return nil, err
	}
	return r, nil
}

// sameWeights compares a fingerprint of every rank's parameters with rank
// 0's.
func sameWeights(c dist.Comm, m *Model) error {
	var sum, sq float64
	for _, p := range m.Params() {
		v, err := p.Value.Download()
		if err != nil {
			return err
		}
		for i, x := range v {
			sum += float64(x) * float64(i%7+1)
			sq += float64(x) * float64(x)
		}
	}
	mine := []float32{float32(sum), float32(sq)}
	all := make([]float32, 2*c.Size())
	if err := c.AllGather(all, mine); err != nil {
		return err
	}
	if all[0] != mine[0] || all[1] != mine[1] {
		return fmt.Errorf("train: rank %d starts from other weights than rank 0: resume every rank from the same checkpoint", c.Rank())
	}
	return nil
}

// sameData compares every rank's dataset with rank 0's, by its
// fingerprint: ranks given different data would train silently on it.
func sameData(c dist.Comm, fp pipeline.Fingerprint) error {
	mine := fmt.Sprintf("%d images, %d classes, %s", fp.Images, len(fp.Classes), fp.Files)
	msg := make([]byte, 160)
	copy(msg, mine)
	if err := c.Broadcast(msg, 0); err != nil {
		return err
	}
	if first := strings.TrimRight(string(msg), "\x00"); first != mine {
		return fmt.Errorf("train: rank %d's data (%s) differs from rank 0's (%s): give every rank the same images", c.Rank(), mine, first)
	}
	return nil
}

func build(d *gpu.Device, cfg Config, o Options, ckpt *Checkpoint) (_ *Run, _ Options, err error) {
	r, err := assemble(d, cfg, o, ckpt)
	return r, o, err
}

func assemble(d *gpu.Device, cfg Config, o Options, ckpt *Checkpoint) (_ *Run, err error) {
	rc, err := cfg.Resolve()
	if err != nil {
		return nil, err
	}
	rank, ranks := 0, 1
	if o.Comm != nil {
		rank, ranks = o.Comm.Rank(), o.Comm.Size()
	}
	if cfg.Batch%ranks != 0 {
		return nil, fmt.Errorf("train: batch %d does not divide among %d ranks: the batch is the global one, each rank takes an equal share", cfg.Batch, ranks)
	}
	r := &Run{}
	defer func() {
		if err != nil {
			r.Release()
		}
	}()
	if r.Data, err = cfg.Data.openTrain(); err != nil {
		return nil, err
	}
	rc.cfg.Data.Validation = cfg.Data.Validation
	r.Dataset = pipeline.FingerprintOf(r.Data)
	if ckpt != nil && ckpt.State.Dataset != nil {
		if diff := ckpt.State.Dataset.Diff(r.Dataset); diff != "" {
			return nil, fmt.Errorf("train: %s was trained on other data than %s holds now (%s): the run would not continue as it began", ckpt.Path, cfg.Data.Name, diff)
		}
	}
	// The preset decides the view size and so the stem, which Resolve
	// fills in: where the images choose it, it is resolved again.
	if r.Note, err = cfg.Data.fitPreset(r.Data); err != nil {
		return nil, err
	}
	if r.Note != "" {
		if rc, err = cfg.Resolve(); err != nil {
			return nil, err
		}
	}
	if err = r.parts(d, rc, o, ckpt, rank, ranks); err != nil {
		return nil, err
	}
	return r, nil
}

// parts makes r's parts from rc, r.Data open; what it makes before an
// error is in r.released.
func (r *Run) parts(d *gpu.Device, rc Resolved, o Options, ckpt *Checkpoint, rank, ranks int) (err error) {
	cfg, views := rc.cfg, rc.views
	r.Config, r.Views = cfg, views
	if cfg.Activations() == gpu.F16 && !d.F16 {
		return fmt.Errorf("train: precision f16: %s has no shader-f16; train in f32", d.Info.Name)
	}
	if cfg.Batch > r.Data.Len() {
		return fmt.Errorf("train: batch %d: more than the %d images of %s", cfg.Batch, r.Data.Len(), cfg.Data.Name)
	}
	size, c, dim := views.A.Size, views.A.Channels(), rc.Dim()
	if r.Exchange, err = ChooseExchange(d, rc, ranks, o.Exchange); err != nil {
		return err
	}
	fused := cfg.Loss.Path.Resolve(d, cfg.Batch, dim) && r.Exchange != ReduceC
	kind := LossFor(fused)
	switch {
	case cfg.InfoNCE > 0:
		kind = InfoNCELoss
	case r.Exchange == ReduceC:
		kind = ReducedCLoss
	}
	if r.Plan, err = CheckMemory(d, rc, MemoryCheck{Ranks: ranks, Loss: kind, Budget: o.MemoryBudget}); err != nil {
		return err
	}
	// What the ranks exchange goes through one meter, to be reported
	// together.
	var comm dist.Comm
	if ranks > 1 {
		comm = &dist.Meter{Comm: o.Comm}
	}
	if r.Model, err = newModel(d, cfg.Model, rc.widths); err != nil {
		return err
	}
	r.released = append(r.released, r.Model.Release)
	if cfg.InfoNCE > 0 {
		r.Objective, err = loss.NewInfoNCE(d, cfg.Batch, dim, float32(cfg.InfoNCE))
	} else {
		lo := cfg.Loss
		lo.Path = loss.Materialised
		if fused {
			lo.Path = loss.Fused
		}
		if r.Exchange == ReduceC {
			r.Loss, err = loss.NewSharded(d, comm, cfg.Batch/ranks, dim, lo)
		} else {
			r.Loss, err = loss.NewBarlowTwins(d, cfg.Batch, dim, lo)
		}
		r.Objective = r.Loss
	}
	if err != nil {
		return err
	}
	r.released = append(r.released, r.Objective.Release)
	oc := optim.DefaultConfig()
	oc.LARS.WeightDecay, oc.SGD.WeightDecay, oc.AdamW.WeightDecay = cfg.WeightDecay, cfg.WeightDecay, cfg.WeightDecay
	if r.Opt, err = optim.New(cfg.Optimizer, d, r.Model.Params(), oc); err != nil {
		return err
	}
	r.released = append(r.released, r.Opt.Release)
	start := 0
	if ckpt != nil {
		if err := ckpt.Restore(r.Model, r.Opt); err != nil {
			return err
		}
		start = ckpt.State.Step
	}
	spe := r.Data.Len() / cfg.Batch
	onDevice := cfg.Data.OnDevice(d)
	if r.Loader, err = pipeline.NewLoader(r.Data, views, pipeline.LoaderConfig{BatchSize: cfg.Batch, Workers: cfg.Data.Workers,
		Seed: cfg.Seed, Shuffle: true, DropLast: true, Epoch: start / spe, Step: start % spe,
		SkipBad: cfg.Data.SkipBad, MaxBadFraction: cfg.Data.MaxBadFraction, OnSkip: o.OnSkip, Raw: onDevice,
		Rank: rank, Ranks: ranks}); err != nil {
		return err
	}
	r.released = append(r.released, func() { r.Loader.Close() })
	if onDevice {
		if r.Augment, err = augment.New(d, views); err != nil {
			return err
		}
		r.released = append(r.released, r.Augment.Close)
	}
	if r.Trainer, err = NewTrainer(d, r.Model, r.Objective, r.Opt, TrainerOptions{Batch: cfg.Batch / ranks, Channels: c, Height: size, Width: size,
		Comm: comm, Start: start, StopGradB: cfg.StopGradient, Activations: cfg.Activations(), LossScale: cfg.GradScale()}); err != nil {
		return err
	}
	r.released = append(r.released, r.Trainer.Release)
	if ranks > 1 && !cfg.PerRankBatchNorm {
		r.Model.SyncBatchNorm(r.Trainer.Comm())
	}
	r.Loop = &Loop{Trainer: r.Trainer, Loader: r.Loader, Augment: r.Augment, Schedule: cfg.Schedule, Epochs: cfg.Epochs, MaxSteps: cfg.Steps, Batch: cfg.Batch,
		CheckpointDir: o.CheckpointDir, CheckpointEvery: o.CheckpointEvery, Keep: o.Keep, Run: RunState{Config: cfg, Dataset: &r.Dataset}}
	if ranks > 1 {
		r.Loop.Comm = r.Trainer.Comm()
	}
	if start >= r.Loop.Steps() {
		return fmt.Errorf("train: %s is at step %d, the end of its run of %d steps (%w); give more epochs or steps to extend it", ckpt.Path, start, r.Loop.Steps(), ErrEnded)
	}
	return nil
}

// Describe is the run's start-up header: adapter, model, data, loss,
// optimiser and schedule, every setting that shapes it.
func (r *Run) Describe(d *gpu.Device) string {
	cfg, views := r.Config, r.Views
	path := "InfoNCE, temperature " + fmt.Sprint(cfg.InfoNCE)
	if r.Loss != nil {
		path = fmt.Sprintf("Barlow Twins, %s path, λ %g, scale %g, %s normalisation", loss.PathName(r.Loss.Fused()), cfg.Loss.Lambda, cfg.Loss.Scale, cfg.Loss.Norm)
		if cfg.Loss.RedundancyOnly {
			path += ", redundancy term only"
		}
	}
	total := r.Loop.Steps()
	on := "the CPU"
	if r.Augment != nil {
		on = "the device"
	}
	model := r.Model.Describe()
	if cfg.Activations() == gpu.F16 {
		model += "; mixed precision: f16 activations, f32 arithmetic, parameters and loss"
	}
	if sc := cfg.GradScale(); sc != 1 {
		model += fmt.Sprintf(", loss scale %g", sc)
	}
	note := ""
	if r.Note != "" {
		note = "\nnote     " + r.Note
	}
	if v := cfg.Data.Validation; v.Fraction > 0 {
		note += "\nsplit    " + v.Describe() + "; figures for choices are taken on it"
	}
	return fmt.Sprintf("adapter  %s\nmodel    %s\ndata     %s train, %d images, %dpx %d-channel views (%s preset) augmented on %s, batch %d, %d steps (%d per epoch)\nloss     %s\noptimise %s, weight decay %g, seed %d\nschedule %s\nmemory   %s",
		d.Info, model, cfg.Data.Name, r.Data.Len(), views.A.Size, views.A.Channels(), cfg.Data.Preset(), on, cfg.Batch, total,
		r.Loader.StepsPerEpoch(), path, cfg.Optimizer, cfg.WeightDecay, cfg.Seed,
		cfg.Schedule.Describe(cfg.Schedule.Warmup.Steps(total, cfg.Epochs), total, cfg.Batch), r.Plan) + note
}

// Release frees everything the run built, in reverse order.
func (r *Run) Release() {
	for i := len(r.released) - 1; i >= 0; i-- {
		r.released[i]()
	}
	r.released = nil
}
