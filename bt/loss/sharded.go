package loss

import (
	"errors"
	"fmt"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
	"github.com/bt-org/bt/shaders"
)

// shard is what a BarlowTwins made by NewSharded keeps beyond the
// materialised path's workspaces: the ranks, the synchronised
// normalisation of each view with its cache, this rank's Σ(ẑ_a − ẑ_b)²
// and the gradients dL/dẐ of its rows.
type shard struct {
	comm     dist.Comm
	bna, bnb *layers.BatchNorm
	ca, cb   *gpu.Tensor // [3, D] the normalisations' caches (layers.BatchNorm.NewCache)
	dd       *gpu.Tensor // [D] this rank's Σ (ẑ_a − ẑ_b)², then over every rank
	dha, dhb *gpu.Tensor // [n, D] dL/dẐ of this rank's rows
}

// NewSharded returns the loss of a global batch of ranks·n pairs spread
// over the ranks of comm, each rank holding n of them (every rank the same
// n), computed by all-reducing C: each rank normalises its rows with the
// global batch's statistics (synchronised BatchNorm, two exchanges of 2·D
// values per view), forms its share Ẑ_Aᵀ·Ẑ_B/N of C and adds it up with
// the others' in one all-reduce of D² + D values, and then has the whole
// C, from which the loss and its gradient dL/dC follow on every rank
// alike. Its rows' gradients dL/dẐ come from C with no further exchange,
// and the backward pass through the normalisation sums 2·D values per
// view over the ranks. Every rank ends with the global batch's loss and
// its own rows of the gradient, what one process would compute over the
// whole batch.
//
// Gathering the embeddings instead (2·N·D values, after which every rank
// runs the loss of the global batch) moves fewer bytes where N < D/2, and
// is the only way for the fused path, the ablations' normalisations and
// InfoNCE, which need every embedding; the trainer chooses (see
// train.Exchange). This path takes the paper's loss only: batch
// normalisation, on the materialised path.
func NewSharded(d *gpu.Device, comm dist.Comm, n, dim int, o Options) (*BarlowTwins, error) {
	if comm == nil {
		return nil, errors.New("loss: NewSharded needs the ranks' dist.Comm")
	}
	if err := o.Validate(); err != nil {
		return nil, err
	}
	if o.Norm != BatchNorm {
		return nil, fmt.Errorf("loss: the all-reduce of C takes batch normalisation only, not %q; gather the embeddings instead", o.Norm)
	}
	if o.Path == Fused {
		return nil, errors.New("loss: the all-reduce of C takes the materialised path; the fused path needs every rank's embeddings gathered")
	}
	if comm.Size()*n < 2 {
		return nil, fmt.Errorf("loss: needs a global batch of at least 2 to normalise over, got %d on %d ranks", n, comm.Size())
	}
	// A rank may hold a single row: the batch normalised over is the
	// global one.
	o.Path = Materialised
	l, err := newBarlowTwins(d, n, dim, o, false)
	if err != nil {
		return nil, err
	}
	s := &shard{comm: comm}
	l.shard = s
	for _, bn := range []**layers.BatchNorm{&s.bna, &s.bnb} {
		if *bn, err = layers.NewBatchNorm(d, "loss.bn", dim, false); err != nil {
			l.Release()
			return nil, err
		}
		(*bn).Sync = comm
	}
	for _, t := range []struct {
		p     **gpu.Tensor
		shape []int
	}{{&s.ca, []int{3, dim}}, {&s.cb, []int{3, dim}}, {&s.dd, []int{dim}}, {&s.dha, []int{n, dim}}, {&s.dhb, []int{n, dim}}} {
		if *t.p, err = d.NewTensor(t.shape...); err != nil {
			l.Release()
			return nil, fmt.Errorf("loss: workspace: %w", err)
		}
	}
	return l, nil
}

// Ranks is the number of ranks the loss's batch is spread over: 1 unless
// it was made by NewSharded, whose Size is then one rank's share.
func (l *BarlowTwins) Ranks() int {
	if l.shard == nil {
		return 1
	}
	return l.shard.comm.Size()
}

func (s *shard) tensors() []*gpu.Tensor {
	if s == nil {
		return nil
	}
	return []*gpu.Tensor{s.ca, s.cb, s.dd, s.dha, s.dhb}
}

func (s *shard) release() {
	if s == nil {
		return
	}
	for _, t := range s.tensors() {
		t.Release()
	}
	for _, bn := range []*layers.BatchNorm{s.bna, s.bnb} {
		if bn != nil {
			bn.Release()
		}
	}
}

// globalN is the batch the loss is of: every rank's rows.
func (l *BarlowTwins) globalN() int { return l.n * l.Ranks() }

// shardedForward is forward over the ranks: see NewSharded.
func (l *BarlowTwins) shardedForward(r *gpu.Recorder, loss, za, zb *gpu.Tensor) error {
	s, n, dim, total := l.shard, l.n, l.dim, l.globalN()
	if err := s.bna.Forward(r, l.ha, s.ca, za, n, 1, true); err != nil {
		return err
	}
	if err := s.bnb.Forward(r, l.hb, s.cb, zb, n, 1, true); err != nil {
		return err
	}
	if err := gpu.Gemm(r, l.c, l.ha, l.hb, gpu.GemmOp{M: dim, N: dim, K: n, TransA: true, Alpha: 1 / float32(total)}); err != nil {
		return err
	}
	k, err := l.d.Kernel("btloss_norm", shaders.BTLossNorm{Norm: true, Given: true, Columns: columns})
	if err != nil {
		return err
	}
	if err := r.Dispatch(k, [3]int{(dim + colBX - 1) / colBX, 1, 1}, gpu.Params{}.U(n).U(dim).F(bnEps), s.dd, l.ha, l.hb); err != nil {
		return err
	}
	// One all-reduce carries C and Σ(ẑ_a − ẑ_b)²; then 1 − C_ii as
	// btloss_norm forms it, from the sum and the scales, and the scales
	// for btloss_back, on the host (O(D)).
	err = r.Sync(func() error {
		c, err := l.c.Download()
		if err != nil {
			return err
		}
		dd, err := s.dd.Download()
		if err != nil {
			return err
		}
		v := append(c, dd...)
		if err := s.comm.AllReduce(v); err != nil {
			return fmt.Errorf("loss: summing C over the ranks: %w", err)
		}
		ca, err := s.ca.Download()
		if err != nil {
			return err
		}
		cb, err := s.cb.Download()
		if err != nil {
			return err
		}
		inv := append(ca[2*dim:], cb[2*dim:]...)
		gap := make([]float32, dim)
		for i, t := range v[dim*dim:] {
			ia, ib := inv[i], inv[dim+i]
			gap[i] = 0.5 * (t/float32(total) + bnEps*(ia*ia+ib*ib))
		}
		for _, u := range []struct {
			t *gpu.Tensor
			v []float32
		}{{l.c, v[:dim*dim]}, {l.gap, gap}, {l.inv, inv}} {
			if err := u.t.Upload(u.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	k, err = l.d.Kernel("btloss_sum", shaders.BTLossSum{Subgroups: l.d.Subgroups, Threads: shaders.Threads{WG: sumWG}})
	if err != nil {
		return err
	}
	if err := r.Dispatch(k, [3]int{l.sumGroups(sumWG), 1, 1}, gpu.Params{}.U(l.sumLen()).U(dim), l.part, l.c); err != nil {
		return err
	}
	if err := l.finish(r, loss, l.stats, l.part, l.sumGroups(sumWG), false); err != nil {
		return err
	}
	l.ready = true
	return nil
}

// shardedBackward is backward over the ranks: this rank's rows of dL/dẐ
// from the global C, then the synchronised normalisation's backward.
func (l *BarlowTwins) shardedBackward(r *gpu.Recorder, dza, dzb *gpu.Tensor) error {
	s, n, dim, total := l.shard, l.n, l.dim, l.globalN()
	alpha := 2 * l.opt.Scale * l.opt.Lambda / float32(total)
	if err := gpu.Gemm(r, s.dha, l.hb, l.c, gpu.GemmOp{M: n, N: dim, K: dim, TransB: true, Alpha: alpha}); err != nil {
		return err
	}
	if err := gpu.Gemm(r, s.dhb, l.ha, l.c, gpu.GemmOp{M: n, N: dim, K: dim, Alpha: alpha}); err != nil {
		return err
	}
	// btloss_back weighs the diagonal by Scale/n for its n rows; the
	// global batch's 1/N is Scale·(n/N)/n.
	k, err := l.d.Kernel("btloss_back", shaders.BTLossBack{Columns: columns})
	if err != nil {
		return err
	}
	if err := r.Dispatch(k, [3]int{(dim + colBX - 1) / colBX, 1, 1},
		gpu.Params{}.U(n).U(dim).F(l.opt.Lambda).F(l.opt.Scale*float32(n)/float32(total)).F(l.onDiag),
		s.dha, s.dhb, l.ha, l.hb, l.inv, l.gap); err != nil {
		return err
	}
	if err := s.bna.Backward(r, dza, s.dha, l.za, s.ca, n, 1); err != nil {
		return err
	}
	return s.bnb.Backward(r, dzb, s.dhb, l.zb, s.cb, n, 1)
}
