package train

import (
	"fmt"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
)

// Exchange is how the ranks of a run share the loss of the global batch.
type Exchange string

const (
	// AutoExchange takes the exchange that moves fewer bytes (see
	// ChooseExchange).
	AutoExchange Exchange = ""
	// Gather all-gathers the embeddings, 2·N·D values: every rank then
	// computes the loss of the global batch on either path and keeps its
	// rows of the gradient. The fused path, the ablations'
	// normalisations and InfoNCE need it.
	Gather Exchange = "gather"
	// ReduceC all-reduces C, D² + D values, with four exchanges of 2·D
	// around the normalisation (loss.NewSharded): fewer bytes wherever
	// N > D/2 or so, and each rank forms only its share of C.
	ReduceC Exchange = "reduce-c"
)

// ExchangeBytes is what each exchange carries per step for a global batch
// of n pairs of width dim over ranks, as dist.Meter counts it: the
// gathered embeddings, or C with the sums around the normalisation (each
// view's statistics gathered from every rank, its gradient's sums
// all-reduced).
func ExchangeBytes(n, dim, ranks int) (gather, reduceC int64) {
	d := int64(dim)
	return 4 * 2 * int64(n) * d, 4 * (d*d + d + 2*2*d*int64(ranks) + 2*2*d)
}

// ChooseExchange is the exchange for a run of rc over ranks on d: the one
// asked for, checked, or for AutoExchange the one that moves fewer bytes
// among those that can serve the loss. The all-reduce of C serves the
// paper's loss on the materialised path only, with C bound on d.
func ChooseExchange(d *gpu.Device, rc Resolved, ranks int, asked Exchange) (Exchange, error) {
	if err := rc.check(); err != nil {
		return "", err
	}
	if ranks == 1 {
		if asked != AutoExchange {
			return "", fmt.Errorf("train: exchange %q: a run of one process exchanges nothing", asked)
		}
		return AutoExchange, nil
	}
	cfg, dim := rc.cfg, rc.Dim()
	why := ""
	switch {
	case cfg.InfoNCE > 0:
		why = "InfoNCE needs every embedding"
	case cfg.Loss.Norm != loss.BatchNorm:
		why = fmt.Sprintf("the %s normalisation ablation needs every embedding", cfg.Loss.Norm)
	case cfg.Loss.Path == loss.Fused:
		why = "the fused path needs every embedding"
	case 4*int64(dim)*int64(dim) > int64(min(d.Limits.MaxStorageBufferBindingSize, d.Limits.MaxBufferSize)):
		why = fmt.Sprintf("C [%d, %d] cannot be bound on %s", dim, dim, d.Info.Name)
	}
	switch asked {
	case Gather:
		return Gather, nil
	case ReduceC:
		if why != "" {
			return "", fmt.Errorf("train: exchange %q: %s; use %q", asked, why, Gather)
		}
		return ReduceC, nil
	case AutoExchange:
		gather, reduce := ExchangeBytes(cfg.Batch, dim, ranks)
		if why == "" && reduce < gather {
			return ReduceC, nil
		}
		return Gather, nil
	}
	return "", fmt.Errorf("train: exchange %q: want %q or %q", asked, Gather, ReduceC)
}

// spread is what a Trainer needs to run one step over the ranks of a
// group as the step of one process over the global batch: each rank
// forwards its share of the batch, the loss sees every rank's embeddings
// (gathered here, or through a sharded loss's own exchange: see
// Exchange), and the update every rank's gradients.
type spread struct {
	comm     *dist.Meter
	ga, gb   *gpu.Tensor // [N, D] every rank's embeddings, in rank order; nil when the loss is sharded
	dga, dgb *gpu.Tensor // [N, D] the loss's gradients for them
}

// newSpread prepares the exchanges of a step over comm (a *dist.Meter is
// used as it is, so that what others exchange through it is counted
// together): with gather, the buffers of the global batch's embeddings.
func newSpread(d *gpu.Device, c dist.Comm, n, dim int, gather bool) (*spread, error) {
	m, ok := c.(*dist.Meter)
	if !ok {
		m = &dist.Meter{Comm: c}
	}
	s := &spread{comm: m}
	if !gather {
		return s, nil
	}
	for _, p := range []**gpu.Tensor{&s.ga, &s.gb, &s.dga, &s.dgb} {
		x, err := d.NewTensor(n*c.Size(), dim)
		if err != nil {
			s.release()
			return nil, fmt.Errorf("train: the global batch's embeddings: %w", err)
		}
		*p = x
	}
	return s, nil
}

func (s *spread) release() {
	for _, x := range []*gpu.Tensor{s.ga, s.gb, s.dga, s.dgb} {
		x.Release()
	}
}

// gather records the exchange that fills ga and gb with every rank's a
// and b.
func (s *spread) gather(r *gpu.Recorder, a, b *gpu.Tensor) error {
	return r.Sync(func() error {
		for _, p := range [][2]*gpu.Tensor{{a, s.ga}, {b, s.gb}} {
			v, err := p[0].Download()
			if err != nil {
				return err
			}
			all := make([]float32, p[1].Len())
			if err := s.comm.AllGather(all, v); err != nil {
				return fmt.Errorf("train: gathering the embeddings: %w", err)
			}
			if err := p[1].Upload(all); err != nil {
				return err
			}
		}
		return nil
	})
}

// scatter records the copy of this rank's rows of dga and dgb into da and
// db.
func (s *spread) scatter(r *gpu.Recorder, da, db *gpu.Tensor) error {
	return r.Sync(func() error {
		for _, p := range [][2]*gpu.Tensor{{s.dga, da}, {s.dgb, db}} {
			v, err := p[0].Download()
			if err != nil {
				return err
			}
			n := p[1].Len()
			if err := p[1].Upload(v[s.comm.Rank()*n : (s.comm.Rank()+1)*n]); err != nil {
				return err
			}
		}
		return nil
	})
}

// bucket is a group of parameters whose gradients are summed over the
// ranks in one all-reduce.
type bucket struct {
	ps   []*layers.Param
	flat []float32
	wait func() error
}

// startReduce records the exchange that starts summing ps's gradients over
// the ranks: once the last branch's backward pass has left the projector,
// its gradients (most of the bytes at the paper's widths) are final and
// travel while the backbone's backward pass runs.
func (s *spread) startReduce(r *gpu.Recorder, ps []*layers.Param) (*bucket, error) {
	b := &bucket{ps: ps}
	err := r.Sync(func() error {
		for _, p := range ps {
			v, err := p.Grad.Download()
			if err != nil {
				return err
			}
			b.flat = append(b.flat, v...)
		}
		b.wait = s.comm.StartAllReduce(b.flat)
		return nil
	})
	return b, err
}

// finishReduce records the exchange that waits for the buckets' sums and
// uploads them: the update is then the one process's update on the global
// batch, and LARS's norms agree on every rank.
func (s *spread) finishReduce(r *gpu.Recorder, bs ...*bucket) error {
	return r.Sync(func() error {
		for _, b := range bs {
			if b.wait == nil {
				continue // its start failed, which Sync reported
			}
			if err := b.wait(); err != nil {
				return fmt.Errorf("train: summing the gradients: %w", err)
			}
			flat := b.flat
			for _, p := range b.ps {
				n := p.Grad.Len()
				if err := p.Grad.Upload(flat[:n]); err != nil {
					return err
				}
				flat = flat[n:]
			}
		}
		return nil
	})
}
