package layers

import (
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/disttest"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// TestBatchNormSync: BatchNorm synchronised over 1 (the passes alone), 2
// and 3 ranks of an
// in-process group computes, on each rank's share, what the float64
// reference computes over the ranks' batches concatenated: the output, the
// cache, the running statistics on every rank, dx, and dγ and dβ summed
// over the ranks (each rank holds its share, which the gradients'
// all-reduce adds up).
func TestBatchNormSync(t *testing.T) {
	devs := gputest.Devices(t, 3)
	rng := gputest.Rand(t)
	cases := []struct {
		ranks, n, c, hw int
		affine, relu    bool
		offset          float64
	}{
		{1, 3, 5, 7, true, true, 0}, {2, 3, 5, 7, true, false, 0}, {2, 1, 17, 3, false, false, 0}, {3, 1, 3, 1, true, true, 0},
		{3, 17, 5, 1, true, true, 1000}, {2, 5, 65, 1, false, true, 0}, {3, 2, 3, 49, true, false, 10},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%dranks/%dx%dx%d/affine=%v/relu=%v/offset=%g", tc.ranks, tc.n, tc.c, tc.hw, tc.affine, tc.relu, tc.offset), func(t *testing.T) {
			total, per := tc.ranks*tc.n, tc.n*tc.c*tc.hw
			// Every value as f32 holds it: the reference sees what the ranks see.
			normal := func(n int) []float64 { return kcheck.Round(kcheck.Normal(rng, n), gpu.F32) }
			x, dy := drawOffset(tc.offset)(rng, 0, total*tc.c*tc.hw), normal(total*tc.c*tc.hw)
			x = kcheck.Round(x, gpu.F32)
			gamma, beta, dg0, db0 := normal(tc.c), normal(tc.c), normal(tc.c), normal(tc.c)
			rm, rv := normal(tc.c), make([]float64, tc.c)
			for j := range rv {
				rv[j] = float64(float32(0.5 + rng.Float64()))
			}
			if tc.relu { // outputs clear of the kink (drawClear)
				s := bnShape{total, tc.c, tc.hw, tc.affine, tc.offset}
				if xhat := clearXhat(rng, s, x); tc.affine {
					redrawBeta(rng, s, xhat, gamma, beta)
				}
			}
			// The reference over the concatenated batch.
			y, mean, invstd := make([]float64, len(x)), make([]float64, tc.c), make([]float64, tc.c)
			var g64, b64 []float64
			if tc.affine {
				g64, b64 = gamma, beta
			}
			ref.BatchNorm(y, mean, invstd, x, g64, b64, total, tc.c, tc.hw, 1e-5)
			dyMasked := append([]float64(nil), dy...)
			if tc.relu {
				for i := range y {
					if y[i] <= 0 {
						y[i], dyMasked[i] = 0, 0
					}
				}
			}
			dx, dg, db := make([]float64, len(x)), make([]float64, tc.c), make([]float64, tc.c)
			ref.BatchNormBackward(dx, dg, db, dyMasked, x, mean, invstd, g64, total, tc.c, tc.hw)
			wantRM, wantRV := append([]float64(nil), rm...), append([]float64(nil), rv...)
			ref.BatchNormRunning(wantRM, wantRV, x, total, tc.c, tc.hw, 0.1)

			type result struct{ y, dx, cache, rm, rv, dg, db []float32 }
			res := make([]result, tc.ranks)
			var mu sync.Mutex
			err := disttest.Run(tc.ranks, func(c dist.Comm) error {
				d, q := devs[c.Rank()], c.Rank()
				b, err := NewBatchNorm(d, "bn", tc.c, tc.affine)
				if err != nil {
					return err
				}
				defer b.Release()
				b.ReLU, b.Sync = tc.relu, c
				up := []struct {
					t *gpu.Tensor
					v []float64
				}{{b.RunningMean, rm}, {b.RunningVar, rv}}
				if tc.affine {
					up = append(up, struct {
						t *gpu.Tensor
						v []float64
					}{b.Gamma.Value, gamma}, struct {
						t *gpu.Tensor
						v []float64
					}{b.Beta.Value, beta}, struct {
						t *gpu.Tensor
						v []float64
					}{b.Gamma.Grad, dg0}, struct {
						t *gpu.Tensor
						v []float64
					}{b.Beta.Grad, db0})
				}
				for _, u := range up {
					if err := u.t.Upload(kcheck.To32(u.v)); err != nil {
						return err
					}
				}
				nan := func(n int) (*gpu.Tensor, error) {
					v := make([]float32, n)
					for i := range v {
						v[i] = float32(math.NaN())
					}
					return d.FromSlice(v, n)
				}
				in, err := d.FromSlice(kcheck.To32(x[q*per:(q+1)*per]), per)
				if err != nil {
					return err
				}
				defer in.Release()
				dout, err := d.FromSlice(kcheck.To32(dy[q*per:(q+1)*per]), per)
				if err != nil {
					return err
				}
				defer dout.Release()
				out, err := nan(per)
				if err != nil {
					return err
				}
				defer out.Release()
				din, err := nan(per)
				if err != nil {
					return err
				}
				defer din.Release()
				cache, err := nan(3 * tc.c)
				if err != nil {
					return err
				}
				defer cache.Release()
				err = d.Run(func(r *gpu.Recorder) error {
					if err := b.Forward(r, out, cache, in, tc.n, tc.hw, true); err != nil {
						return err
					}
					return b.Backward(r, din, dout, in, cache, tc.n, tc.hw)
				})
				if err != nil {
					return err
				}
				var rr result
				for _, g := range []struct {
					dst *[]float32
					t   *gpu.Tensor
				}{{&rr.y, out}, {&rr.dx, din}, {&rr.cache, cache}, {&rr.rm, b.RunningMean}, {&rr.rv, b.RunningVar}} {
					if *g.dst, err = g.t.Download(); err != nil {
						return err
					}
				}
				if tc.affine {
					if rr.dg, err = b.Gamma.Grad.Download(); err != nil {
						return err
					}
					if rr.db, err = b.Beta.Grad.Download(); err != nil {
						return err
					}
				}
				mu.Lock()
				res[q] = rr
				mu.Unlock()
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			var gotY, gotDX []float32
			gotDG, gotDB := make([]float32, tc.c), make([]float32, tc.c)
			for q, rr := range res {
				gotY, gotDX = append(gotY, rr.y...), append(gotDX, rr.dx...)
				mean32, inv32 := make([]float32, tc.c), rr.cache[2*tc.c:]
				for j := range mean32 {
					mean32[j] = rr.cache[j] + rr.cache[tc.c+j]
				}
				check(t, fmt.Sprintf("rank %d: the cache's mean", q), mean32, mean)
				check(t, fmt.Sprintf("rank %d: the cache's invstd", q), inv32, invstd)
				check(t, fmt.Sprintf("rank %d: running mean", q), rr.rm, wantRM)
				check(t, fmt.Sprintf("rank %d: running variance", q), rr.rv, wantRV)
				if tc.affine {
					for j := range tc.c {
						// Each rank adds its share to the gradient it started with.
						gotDG[j] += rr.dg[j] - float32(dg0[j])
						gotDB[j] += rr.db[j] - float32(db0[j])
					}
				}
			}
			check(t, "output", gotY, y)
			check(t, "dx", gotDX, dx)
			if tc.affine {
				check(t, "dγ over the ranks", gotDG, dg)
				check(t, "dβ over the ranks", gotDB, db)
			}
		})
	}
}

func check(t *testing.T, what string, got []float32, want []float64) {
	t.Helper()
	if err := ref.Compare(kcheck.To64(got), want, kcheck.Reduction); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}
