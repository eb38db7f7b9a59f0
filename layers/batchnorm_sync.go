package layers

import (
	"fmt"
	"math"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/shaders"
)

// synced reports whether the layer takes its training statistics through
// Sync. A group of one (dist.Single) runs the synchronised passes over this
// batch alone, which is how one device checks their kernels.
func (b *BatchNorm) synced() bool { return b.Sync != nil }

// syncForward is Forward in training mode with the statistics of every
// rank's batch, as PyTorch's SyncBatchNorm: each rank's mean and M2 are
// gathered and merged on the host in float64 (Chan's parallel update, which
// does not cancel where the ranks' means differ), the running statistics
// move on the host, and the normalisation is the eval pass with the batch's
// mean and biased variance. in is [N, C, HW] on this rank; every rank has
// the same N.
func (b *BatchNorm) syncForward(r *gpu.Recorder, out, cache, in *gpu.Tensor, n, hw int) error {
	local, err := b.d.NewTensor(2, b.C) // this rank's mean, M2
	if err != nil {
		return err
	}
	defer local.Release()
	mean, err := b.d.NewTensor(b.C)
	if err != nil {
		return err
	}
	defer mean.Release()
	variance, err := b.d.NewTensor(b.C)
	if err != nil {
		return err
	}
	defer variance.Release()
	if err := b.syncPass(r, "stats", n, hw, b.C, 0, local, in); err != nil {
		return err
	}
	err = r.Sync(func() error {
		v, err := local.Download()
		if err != nil {
			return err
		}
		ranks := b.Sync.Size()
		all := make([]float32, ranks*len(v))
		if err := b.Sync.AllGather(all, v); err != nil {
			return fmt.Errorf("layers: BatchNorm %s: %w", b.name, err)
		}
		rm, err := b.RunningMean.Download()
		if err != nil {
			return err
		}
		rv, err := b.RunningVar.Download()
		if err != nil {
			return err
		}
		per, total := float64(n*hw), float64(ranks*n*hw)
		mom := float64(b.Momentum)
		c := make([]float32, 3*b.C)
		m32, v32 := make([]float32, b.C), make([]float32, b.C)
		for j := range b.C {
			var mu, m2 float64
			for q := range ranks {
				mu += float64(all[q*2*b.C+j])
			}
			mu /= float64(ranks)
			for q := range ranks {
				d := float64(all[q*2*b.C+j]) - mu
				m2 += float64(all[q*2*b.C+b.C+j]) + per*d*d
			}
			biased := m2 / total
			// The cache keeps the mean as x₀ + δ: the float32 mean and
			// what rounding it left out.
			m32[j], v32[j] = float32(mu), float32(biased)
			c[j], c[b.C+j], c[2*b.C+j] = m32[j], float32(mu-float64(m32[j])), float32(1/math.Sqrt(biased+float64(b.Eps)))
			rm[j] = float32((1-mom)*float64(rm[j]) + mom*mu)
			rv[j] = float32((1-mom)*float64(rv[j]) + mom*m2/(total-1))
		}
		for _, u := range []struct {
			t *gpu.Tensor
			v []float32
		}{{cache, c}, {mean, m32}, {variance, v32}, {b.RunningMean, rm}, {b.RunningVar, rv}} {
			if err := u.t.Upload(u.v); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return b.normalise(r, out, in, mean, variance, n, hw)
}

// syncBackward is Backward with the sums over every rank's batch: this
// rank's Σdy and Σdy·x̂ (which also add its share to dγ and dβ), summed
// over the ranks on the host, then dx from the totals.
func (b *BatchNorm) syncBackward(r *gpu.Recorder, dIn, dOut, in, cache *gpu.Tensor, n, hw int) error {
	sums, err := b.d.NewTensor(2, b.C)
	if err != nil {
		return err
	}
	defer sums.Release()
	relu := b.ReLU && b.Affine()
	grad := []*gpu.Tensor{sums}
	if b.Affine() {
		grad = append(grad, b.Gamma.Grad, b.Beta.Grad)
	}
	grad = append(grad, dOut, in, cache)
	if relu {
		grad = append(grad, b.Gamma.Value, b.Beta.Value)
	}
	if err := b.syncPass(r, "grad", n, hw, b.C, 0, grad...); err != nil {
		return err
	}
	err = r.Sync(func() error {
		v, err := sums.Download()
		if err != nil {
			return err
		}
		if err := b.Sync.AllReduce(v); err != nil {
			return fmt.Errorf("layers: BatchNorm %s: %w", b.name, err)
		}
		return sums.Upload(v)
	})
	if err != nil {
		return err
	}
	apply := []*gpu.Tensor{dIn, dOut, in, cache, sums}
	if b.Affine() {
		apply = append(apply, b.Gamma.Value)
	}
	if relu {
		apply = append(apply, b.Beta.Value)
	}
	return b.syncPass(r, "apply", n, hw, (n*b.C*hw+bnWG-1)/bnWG, float32(b.Sync.Size()*n*hw), apply...)
}

// syncPass dispatches one pass of batchnorm_sync over groups workgroups.
func (b *BatchNorm) syncPass(r *gpu.Recorder, mode shaders.BNSyncMode, n, hw, groups int, m float32, ts ...*gpu.Tensor) error {
	half := halfOf(ts)
	k, err := b.d.Kernel("batchnorm_sync", shaders.BatchNormSync{Mode: mode, Affine: b.Affine(), ReLU: b.ReLU, Half: half,
		Threads: shaders.Threads{WG: bnWG}})
	if err != nil {
		return err
	}
	grid, err := spreadGrid(b.d, groups)
	if err != nil {
		return err
	}
	return r.Dispatch(k, grid, gpu.Params{}.U(n).U(b.C).U(hw).F(m), ts...)
}
