package train

import (
	"errors"
	"fmt"

	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/models"
)

// MemoryPlan is the device memory a training step needs, worked out from
// the architecture before anything is allocated.
type MemoryPlan struct {
	Batch       int // this rank's share of the global batch
	Ranks       int
	Params      int64 // trainable parameters
	ParamBytes  int64 // values, gradients and optimiser state
	Activations int64 // both views' forward passes, kept for backward
	Scratch     int64 // backward temporaries, views, embeddings and the loss's workspaces
	Largest     int64 // the largest single tensor, which must fit one binding
	Total       int64
}

func (m MemoryPlan) String() string {
	gib := func(b int64) string { return fmt.Sprintf("%.2f GiB", float64(b)/(1<<30)) }
	batch := fmt.Sprint(m.Batch)
	if m.Ranks > 1 {
		batch += fmt.Sprintf(" on each of %d ranks", m.Ranks)
	}
	return fmt.Sprintf("batch %s: %s in all (parameters, gradients and optimiser state %s for %.1fM parameters; activations %s; scratch %s); largest tensor %.0f MiB",
		batch, gib(m.Total), gib(m.ParamBytes), float64(m.Params)/1e6, gib(m.Activations), gib(m.Scratch), float64(m.Largest)/(1<<20))
}

// ErrMemory is wrapped by CheckMemory's error when a step does not fit.
var ErrMemory = errors.New("does not fit")

// optimizerStates is how many parameter-sized tensors each optimiser keeps.
var optimizerStates = map[optim.Kind]int64{optim.LARS: 1, optim.SGD: 1, optim.AdamW: 2}

// LossKind is the objective whose workspaces a memory plan counts.
type LossKind int

const (
	MaterialisedLoss LossKind = iota // Barlow Twins with C stored: D×D
	FusedLoss                        // Barlow Twins through two N×N Gram matrices
	InfoNCELoss                      // four N×N logit and gradient matrices, four N×D embeddings
	// ReducedCLoss is Barlow Twins over several ranks with C all-reduced
	// (loss.NewSharded): D×D, and this rank's rows of dL/dẐ.
	ReducedCLoss
)

// LossFor is the Barlow Twins path, fused or materialised.
func LossFor(fused bool) LossKind {
	if fused {
		return FusedLoss
	}
	return MaterialisedLoss
}

// Step is what a twin step's memory depends on.
type Step struct {
	Model ModelConfig
	// Batch pairs of Channels×Height×Width images on one of Ranks
	// processes, each taking Batch/Ranks of them.
	Batch, Ranks            int
	Channels, Height, Width int
	Loss                    LossKind
	// Activations is the activations' element type: f16 halves them and
	// the backward pass's temporaries (Config.Precision); the views,
	// representations, embeddings and everything of the parameters stay
	// f32.
	Activations gpu.DType
	Optimizer   optim.Kind
}

// PlanMemory sizes a twin step: the network's passes are this rank's
// share of the batch, and so is the loss's memory where the ranks
// all-reduce C; where they gather the embeddings instead, every rank
// holds the loss of the whole batch and the gathered embeddings with
// their gradients.
func PlanMemory(s Step) (MemoryPlan, error) {
	widths, err := s.Model.Projector.Widths()
	if err != nil {
		return MemoryPlan{}, err
	}
	return planMemory(s, widths)
}

// planMemory is PlanMemory with the projector's widths parsed.
func planMemory(s Step, widths []int) (MemoryPlan, error) {
	mc, batch, ranks, c, h, w, loss, act := s.Model, s.Batch, s.Ranks, s.Channels, s.Height, s.Width, s.Loss, s.Activations
	if ranks < 1 || batch%ranks != 0 {
		return MemoryPlan{}, fmt.Errorf("train: batch %d does not divide among %d ranks", batch, ranks)
	}
	global := int64(batch)
	batch /= ranks
	bb, err := models.BackboneFootprint(models.Config{Arch: mc.Arch, Stem: mc.Stem, InChannels: mc.InChannels}, batch, h, w, act)
	if err != nil {
		return MemoryPlan{}, err
	}
	pr, err := models.ProjectorFootprint(bb.Dim, widths, mc.NoBN, batch, act)
	if err != nil {
		return MemoryPlan{}, err
	}
	states, ok := optimizerStates[s.Optimizer]
	if !ok {
		return MemoryPlan{}, fmt.Errorf("train: unknown optimiser %q", s.Optimizer)
	}
	n, dim, emb := int64(batch), int64(bb.Dim), int64(pr.Dim)
	p := MemoryPlan{Batch: batch, Ranks: ranks, Params: bb.Params + pr.Params}
	p.Activations = 2 * (bb.Kept + pr.Kept)
	if mc.Predictor {
		// On the first branch only, with its output and that gradient.
		pd, err := models.ProjectorFootprint(pr.Dim, []int{pr.Dim, pr.Dim}, false, batch, act)
		if err != nil {
			return MemoryPlan{}, err
		}
		p.Params += pd.Params
		p.Activations += pd.Kept + 2*4*n*emb
	}
	p.ParamBytes = 4 * p.Params * (2 + states)
	// The loss's batch: the global one, gathered on every rank (with the
	// gathered embeddings and their gradients), or this rank's share.
	lb, gathered := global, int64(0)
	if ranks > 1 {
		gathered = 4 * 4 * global * emb
	}
	var ws, wsLargest int64
	switch loss {
	case MaterialisedLoss:
		ws, wsLargest = 4*emb*emb, 4*emb*emb // C
	case FusedLoss:
		ws, wsLargest = 2*4*lb*lb, 4*lb*lb // the Gram matrices
	case InfoNCELoss:
		ws, wsLargest = 4*4*lb*lb+4*4*lb*emb, 4*lb*lb // see loss.NewInfoNCE
	case ReducedCLoss:
		lb, gathered = n, 0
		ws, wsLargest = 4*emb*emb+2*4*n*emb, 4*emb*emb // C and dL/dẐ
	default:
		return MemoryPlan{}, fmt.Errorf("train: unknown loss kind %d", loss)
	}
	// Backward holds about four activation-sized gradients at once inside
	// a block; the trainer holds the views, representations and embeddings
	// with their gradients; the loss its normalised embeddings.
	p.Scratch = 4*bb.Largest + 2*4*n*int64(c*h*w) + 4*4*n*(dim+emb) + 2*4*lb*emb + gathered + ws
	p.Largest = max(bb.Largest, pr.Largest, wsLargest, 4*lb*emb)
	p.Total = p.ParamBytes + p.Activations + p.Scratch
	return p, nil
}

// MemoryCheck is how CheckMemory plans a resolved configuration's step.
type MemoryCheck struct {
	Ranks int // processes sharing the batch; 0 is 1
	Loss  LossKind
	// Budget, in bytes, when positive, is the most the step may take.
	Budget int64
}

// CheckMemory plans a step of rc on d (see PlanMemory) and returns an
// error when it cannot run: a tensor beyond the adapter's binding limit,
// or, when o.Budget is positive, a total beyond it. The error names the
// largest batch that would fit, a multiple of the ranks.
func CheckMemory(d *gpu.Device, rc Resolved, o MemoryCheck) (MemoryPlan, error) {
	if err := rc.check(); err != nil {
		return MemoryPlan{}, err
	}
	cfg, size := rc.cfg, rc.views.A.Size
	s := Step{Model: cfg.Model, Batch: cfg.Batch, Ranks: max(o.Ranks, 1), Channels: rc.views.A.Channels(), Height: size, Width: size,
		Loss: o.Loss, Activations: cfg.Activations(), Optimizer: cfg.Optimizer}
	batch, ranks, loss, budget := s.Batch, s.Ranks, s.Loss, o.Budget
	limit := int64(min(d.Limits.MaxStorageBufferBindingSize, d.Limits.MaxBufferSize))
	fits := func(p MemoryPlan) bool { return p.Largest <= limit && (budget <= 0 || p.Total <= budget) }
	p, err := planMemory(s, rc.widths)
	if err != nil || fits(p) {
		return p, err
	}
	why := fmt.Sprintf("its largest tensor (%.0f MiB) exceeds %s's binding limit of %d MiB", float64(p.Largest)/(1<<20), d.Info.Name, limit>>20)
	if p.Largest <= limit {
		why = fmt.Sprintf("it needs %.2f GiB, more than the %.2f GiB allowed (-memory)", float64(p.Total)/(1<<30), float64(budget)/(1<<30))
	}
	best := 0
	for lo, hi := 1, batch/ranks-1; lo <= hi; {
		mid := (lo + hi) / 2
		smaller := s
		smaller.Batch = mid * ranks
		q, err := planMemory(smaller, rc.widths)
		if err != nil {
			return p, err
		}
		if fits(q) {
			best, lo = mid, mid+1
		} else {
			hi = mid - 1
		}
	}
	best *= ranks
	if best < 2 {
		hint := "a narrower projector may"
		if loss == MaterialisedLoss {
			hint = "a narrower projector or the fused loss may"
		}
		return p, fmt.Errorf("train: a step at batch %d %w: %s, and no batch of 2 or more would (%s)", batch, ErrMemory, why, hint)
	}
	return p, fmt.Errorf("train: a step at batch %d %w: %s; the largest batch that fits is %d", batch, ErrMemory, why, best)
}
