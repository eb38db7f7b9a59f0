package train

import (
	"fmt"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
)

// spread is what a Trainer needs to run one step over the ranks of a
// group as the step of one process over the global batch: each rank
// forwards its share of the batch, the loss sees every rank's embeddings,
// and the update every rank's gradients.
//
// The loss gathers the embeddings, 2·N·D values (N the global batch, D
// the width), and every rank computes the loss of the global batch and
// keeps its rows of the gradient. Summing partial cross-correlations
// instead would all-reduce C, D² values, and three exchanges around the
// normalisation: more bytes wherever N < D, as at the paper's N = 2048,
// D = 8192 (128 MiB against 256 MiB per step), and the Gram path needs
// every embedding anyway.
type spread struct {
	comm     *dist.Meter
	ga, gb   *gpu.Tensor // [N, D] every rank's embeddings, in rank order
	dga, dgb *gpu.Tensor // [N, D] the loss's gradients for them
}

func newSpread(d *gpu.Device, c dist.Comm, n, dim int) (*spread, error) {
	s := &spread{comm: &dist.Meter{Comm: c}}
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
