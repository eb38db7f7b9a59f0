package train

import (
	"fmt"
	"math"

	"github.com/bt-org/bt/augment"
	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
)

// Trainer performs Barlow Twins steps: two forward passes with shared
// weights (BatchNorm statistics per view), the loss, the backward pass
// through both branches and one optimiser update, recorded into one command
// buffer and submitted at once. The loss comes back through a Readback, so
// the device is not stalled for it: Step returns the loss of the step
// before, which keeps at most two steps in flight while the next batch is
// being prepared.
type Trainer struct {
	Model *Model
	Loss  loss.Objective
	Opt   optim.Optimizer
	// Step counts the steps submitted since training began (resumes
	// included).
	Step int

	d          *gpu.Device
	o          TrainerOptions
	n, c, h, w int
	xa, xb     *gpu.Tensor // [n, c, h, w] the two views
	ra, rb     *gpu.Tensor // [n, Dim] representations
	dra, drb   *gpu.Tensor // [n, Dim] their gradients
	za, zb     *gpu.Tensor // [n, D] embeddings
	dza, dzb   *gpu.Tensor // [n, D] their gradients
	qa, dqa    *gpu.Tensor // [n, D] the predictor's output on view A and its gradient, with a predictor
	loss       *gpu.Tensor // [1]
	pending    *pendingLoss
	spread     *spread // nil in one process
}

type pendingLoss struct {
	step   int
	rb     *gpu.Readback
	scales *gpu.Readback // the objective's Scales; nil without
}

// StepLoss is the loss of one step, read back from the device, with the
// Barlow Twins loss's terms and C's figures (nil for other objectives)
// and its embeddings' spread (nil where the objective keeps no scales).
type StepLoss struct {
	Step   int
	Loss   float32
	Terms  *loss.Stats
	Spread *Spread
}

// Spread summarises the standard deviation over the batch of every
// embedding dimension, before the loss normalises it, over both views:
// what falls towards 0 when the embeddings collapse to a constant.
type Spread struct {
	Mean float32 // over the dimensions of both views
	Min  float32 // the smallest
}

// spreadOf is the Spread of Scales' values read back.
func spreadOf(scales []float32) *Spread {
	if len(scales) == 0 {
		return nil
	}
	sum, lo := 0.0, math.Inf(1)
	for _, v := range scales {
		s := loss.Std(v)
		sum += s
		lo = min(lo, s)
	}
	return &Spread{Mean: float32(sum / float64(len(scales))), Min: float32(lo)}
}

// figured is an objective that leaves more figures than the loss on the
// device, read back with it (loss.BarlowTwins).
type figured interface {
	Figures() *gpu.Tensor
	StatsOf(v []float32) loss.Stats
}

// scaled is an objective that leaves each embedding dimension's scale on
// the device, read back with the loss (loss.BarlowTwins with batch
// normalisation: Scales is nil otherwise).
type scaled interface {
	Scales() *gpu.Tensor
}

// TrainerOptions are the shape of a Trainer's steps and how they are
// taken.
type TrainerOptions struct {
	// Batch image pairs of Channels×Height×Width per step: with Comm, this
	// rank's share of the global batch.
	Batch                   int
	Channels, Height, Width int
	// Comm, a group of several ranks, spreads each step over them; nil:
	// one process.
	Comm dist.Comm
	// Start is the steps taken before (a resumed run's).
	Start int
	// StopGradB stops the gradient at view B's embedding, so only branch
	// A trains the shared weights: one of the paper's asymmetry ablations.
	StopGradB bool
	// Activations is the element type of the passes' activations and
	// their gradients: gpu.F16 trains in mixed precision (Config.Precision).
	Activations gpu.DType
	// LossScale multiplies the loss's gradient on its way into the network
	// and divides the parameters' gradients before the update
	// (Config.LossScale); 0 or 1 leaves them alone.
	LossScale float32
}

// NewTrainer prepares twin steps of o.Batch image pairs for model, with
// an objective for batches of that many (the Barlow Twins Loss, or
// InfoNCE) and opt over model's parameters. With o.Comm, a group of
// several ranks, o.Batch is this rank's share of the global batch, for
// which the objective is made (o.Batch·ranks), or which a sharded
// objective takes (loss.NewSharded, made over the same comm): each step
// is then the step of one process over the global batch (see spread), and
// the model's BatchNorms should share comm (Model.SyncBatchNorm) for its
// statistics to be the global batch's too.
func NewTrainer(d *gpu.Device, model *Model, obj loss.Objective, opt optim.Optimizer, o TrainerOptions) (*Trainer, error) {
	n, c, h, w, comm := o.Batch, o.Channels, o.Height, o.Width, o.Comm
	if c != model.Config.InChannels {
		return nil, fmt.Errorf("train: the data has %d channels but the model takes %d", c, model.Config.InChannels)
	}
	ranks := 1
	if comm != nil {
		ranks = comm.Size()
	}
	// A sharded objective (loss.NewSharded) takes this rank's rows and
	// exchanges what it needs itself; any other sees the global batch,
	// gathered.
	lossRows := n * ranks
	sh, ok := obj.(interface{ Ranks() int })
	sharded := ok && sh.Ranks() > 1
	if sharded {
		if sh.Ranks() != ranks {
			return nil, fmt.Errorf("train: the loss is spread over %d ranks, the trainer over %d", sh.Ranks(), ranks)
		}
		lossRows = n
	}
	if ln, ld := obj.Size(); ln != lossRows || ld != model.Projector.Out {
		return nil, fmt.Errorf("train: the loss is for %d×%d embeddings, the trainer makes %d×%d", ln, ld, lossRows, model.Projector.Out)
	}
	t := &Trainer{Model: model, Loss: obj, Opt: opt, Step: o.Start, d: d, o: o, n: n, c: c, h: h, w: w}
	dim, out := model.Backbone.Dim, model.Projector.Out
	for _, a := range []struct {
		p     **gpu.Tensor
		shape []int
	}{
		{&t.xa, []int{n, c, h, w}}, {&t.xb, []int{n, c, h, w}},
		{&t.ra, []int{n, dim}}, {&t.rb, []int{n, dim}}, {&t.dra, []int{n, dim}}, {&t.drb, []int{n, dim}},
		{&t.za, []int{n, out}}, {&t.zb, []int{n, out}}, {&t.dza, []int{n, out}}, {&t.dzb, []int{n, out}},
		{&t.loss, []int{1}}, {&t.qa, []int{n, out}}, {&t.dqa, []int{n, out}},
	} {
		x, err := d.NewTensor(a.shape...)
		if err != nil {
			t.Release()
			return nil, fmt.Errorf("train: trainer buffers for batch %d: %w", n, err)
		}
		*a.p = x
	}
	if ranks > 1 {
		var err error
		if t.spread, err = newSpread(d, comm, n, out, !sharded); err != nil {
			t.Release()
			return nil, err
		}
	}
	return t, nil
}

// Comm is what the trainer's steps have exchanged with the other ranks so
// far; nil in one process.
func (t *Trainer) Comm() *dist.Meter {
	if t.spread == nil {
		return nil
	}
	return t.spread.comm
}

// record records the whole twin step into r.
func (t *Trainer) record(r *gpu.Recorder, lrWeights, lrVectors float32) error {
	m := t.Model
	if err := layers.ZeroGrad(r, m.Params()); err != nil {
		return err
	}
	pa, pb := models.NewPassOf(t.d, true, t.o.Activations), models.NewPassOf(t.d, true, t.o.Activations)
	// Passes go back to the pool once recorded: whatever reuses their
	// memory is recorded, and so runs, after the backward pass.
	defer pa.Release()
	defer pb.Release()
	for _, v := range []struct {
		p       *models.Pass
		x, r, z *gpu.Tensor
	}{{pa, t.xa, t.ra, t.za}, {pb, t.xb, t.rb, t.zb}} {
		if err := m.Backbone.Forward(r, v.p, v.r, v.x, t.n, t.h, t.w); err != nil {
			return err
		}
		if err := m.Projector.Forward(r, v.p, v.z, v.r, t.n); err != nil {
			return err
		}
	}
	// With a predictor, the loss sees its output on view A instead of the
	// embedding, and the gradient goes back through it.
	first, dFirst := t.za, t.dza
	pq := models.NewPassOf(t.d, true, t.o.Activations)
	defer pq.Release()
	if m.Predictor != nil {
		if err := m.Predictor.Forward(r, pq, t.qa, t.za, t.n); err != nil {
			return err
		}
		first, dFirst = t.qa, t.dqa
	}
	// Over several ranks the loss is the global batch's: gathered here,
	// or through a sharded loss's own exchanges.
	la, lb, dla, dlb := first, t.zb, dFirst, t.dzb
	gathered := t.spread != nil && t.spread.ga != nil
	if gathered {
		if err := t.spread.gather(r, first, t.zb); err != nil {
			return err
		}
		la, lb, dla, dlb = t.spread.ga, t.spread.gb, t.spread.dga, t.spread.dgb
	}
	if err := t.Loss.Forward(r, t.loss, la, lb); err != nil {
		return err
	}
	if err := t.Loss.Backward(r, dla, dlb); err != nil {
		return err
	}
	if gathered {
		if err := t.spread.scatter(r, dFirst, t.dzb); err != nil {
			return err
		}
	}
	scaled := t.o.LossScale != 0 && t.o.LossScale != 1
	if scaled {
		for _, dz := range []*gpu.Tensor{dFirst, t.dzb} {
			if err := gpu.Scale(r, dz, dz, t.o.LossScale); err != nil {
				return err
			}
		}
	}
	if m.Predictor != nil {
		if err := m.Predictor.Backward(r, pq, t.dza, t.dqa); err != nil {
			return err
		}
	}
	branches := []struct {
		p      *models.Pass
		dr, dz *gpu.Tensor
	}{{pa, t.dra, t.dza}, {pb, t.drb, t.dzb}}
	if t.o.StopGradB {
		branches = branches[:1]
	}
	var head *bucket // over several ranks: the projector's and predictor's gradients, on their way
	for i, v := range branches {
		if err := m.Projector.Backward(r, v.p, v.dr, v.dz); err != nil {
			return err
		}
		if t.spread != nil && i == len(branches)-1 {
			ps := m.Projector.Params()
			if m.Predictor != nil {
				ps = append(ps, m.Predictor.Params()...)
			}
			var err error
			if head, err = t.spread.startReduce(r, ps); err != nil {
				return err
			}
		}
		if err := m.Backbone.Backward(r, v.p, v.dr); err != nil {
			return err
		}
	}
	if t.spread != nil {
		body, err := t.spread.startReduce(r, m.Backbone.Params())
		if err != nil {
			return err
		}
		if err := t.spread.finishReduce(r, head, body); err != nil {
			return err
		}
	}
	if scaled {
		for _, p := range m.Params() {
			if err := gpu.Scale(r, p.Grad, p.Grad, 1/t.o.LossScale); err != nil {
				return err
			}
		}
	}
	return t.Opt.Step(r, lrWeights, lrVectors)
}

// TwinStep uploads the two views a and b ([n, c, h, w] each), records and
// submits one step with the given learning rates, and returns the loss of
// the step before it (nil on the first call), waiting for it if the device
// has not finished that step yet.
func (t *Trainer) TwinStep(a, b []float32, lrWeights, lrVectors float32) (*StepLoss, error) {
	if err := t.xa.Upload(a); err != nil {
		return nil, fmt.Errorf("train: view A: %w", err)
	}
	if err := t.xb.Upload(b); err != nil {
		return nil, fmt.Errorf("train: view B: %w", err)
	}
	return t.submit(nil, lrWeights, lrVectors)
}

// RawStep is TwinStep for a raw batch (pipeline.LoaderConfig.Raw): aug
// records b's two views into the step's own recording, ahead of the step,
// so only the 8-bit images and the draws are uploaded.
func (t *Trainer) RawStep(aug *augment.Augmenter, b *pipeline.Batch, lrWeights, lrVectors float32) (*StepLoss, error) {
	return t.submit(func(r *gpu.Recorder) error { return aug.Record(r, b, t.xa, t.xb) }, lrWeights, lrVectors)
}

// submit records views into xa and xb (unless nil: they were uploaded),
// then the step, submits it, and returns the loss of the step before.
func (t *Trainer) submit(views func(*gpu.Recorder) error, lrWeights, lrVectors float32) (*StepLoss, error) {
	r, err := t.d.Record(false)
	if err != nil {
		return nil, err
	}
	tr := t.d.Trace()
	if views != nil {
		span := tr.Begin("augment (record)")
		err := views(r)
		span.End()
		if err != nil {
			r.Discard()
			return nil, fmt.Errorf("train: step %d: %w", t.Step, err)
		}
	}
	span := tr.Begin("record")
	err = t.record(r, lrWeights, lrVectors)
	span.End()
	if err != nil {
		r.Discard()
		return nil, fmt.Errorf("train: step %d: %w", t.Step, err)
	}
	out := t.loss
	if f, ok := t.Loss.(figured); ok {
		out = f.Figures() // its first figure is the loss
	}
	rb, err := r.Readback(out)
	if err != nil {
		r.Discard()
		return nil, err
	}
	var scales *gpu.Readback // 2·D floats: the spread costs no wait of its own
	if s, ok := t.Loss.(scaled); ok && s.Scales() != nil {
		if scales, err = r.Readback(s.Scales()); err != nil {
			r.Discard()
			return nil, err
		}
	}
	if err := r.Submit(); err != nil {
		return nil, err
	}
	prev, err := t.Flush()
	t.pending = &pendingLoss{step: t.Step, rb: rb, scales: scales}
	t.Step++
	return prev, err
}

// Flush waits for the loss of the latest submitted step and returns it
// (nil when none is pending).
func (t *Trainer) Flush() (*StepLoss, error) {
	p := t.pending
	if p == nil {
		return nil, nil
	}
	t.pending = nil
	v, err := p.rb.Wait()
	if err != nil {
		return nil, fmt.Errorf("train: reading the loss of step %d: %w", p.step, err)
	}
	sl := &StepLoss{Step: p.step, Loss: v[0]}
	if f, ok := t.Loss.(figured); ok {
		terms := f.StatsOf(v)
		sl.Terms = &terms
	}
	if p.scales != nil {
		sc, err := p.scales.Wait()
		if err != nil {
			return nil, fmt.Errorf("train: reading the embeddings' spread of step %d: %w", p.step, err)
		}
		sl.Spread = spreadOf(sc)
	}
	return sl, nil
}

func (t *Trainer) buffers() []*gpu.Tensor {
	return []*gpu.Tensor{t.xa, t.xb, t.ra, t.rb, t.dra, t.drb, t.za, t.zb, t.dza, t.dzb, t.loss, t.qa, t.dqa}
}

// Release frees the trainer's buffers (not the model, loss or optimiser).
func (t *Trainer) Release() {
	t.Flush()
	for _, x := range t.buffers() {
		x.Release()
	}
	if t.spread != nil {
		t.spread.release()
	}
}

// Profile records one twin step with per-kernel device timing and returns
// the time of every dispatch, in recording order. It changes the model like
// any step.
func (t *Trainer) Profile(a, b []float32, lrWeights, lrVectors float32) ([]gpu.Timing, error) {
	if _, err := t.Flush(); err != nil {
		return nil, err
	}
	if err := t.xa.Upload(a); err != nil {
		return nil, err
	}
	if err := t.xb.Upload(b); err != nil {
		return nil, err
	}
	r, err := t.d.Record(true)
	if err != nil {
		return nil, err
	}
	if err := t.record(r, lrWeights, lrVectors); err != nil {
		r.Discard()
		return nil, err
	}
	if err := r.Submit(); err != nil {
		return nil, err
	}
	t.Step++
	return r.Timings()
}
