package layers

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// TestBatchNormHalf checks BatchNorm on activations stored as f16 (mixed
// precision: statistics, parameters and arithmetic in f32) against the
// float64 reference on the same f16 values: the training forward and the
// backward (with γ and β learnt, their gradients in f32), in each layout
// (serial and workgroups on CPU adapters, synchronised over a group of
// one), and the evaluation forward. f16 outputs are held to HalfStorage,
// the parameters' gradients to Reduction.
func TestBatchNormHalf(t *testing.T) {
	d := gputest.Device(t)
	gputest.NeedF16(t, d)
	h := gpu.F16
	for _, layout := range []string{"default", "workgroup", "synced"} {
		for _, s := range []bnShape{{1, 3, 9, true, 0}, {17, 3, 1, true, 0}, {5, 65, 1, true, 0}, {5, 17, 49, true, 0}, {17, 3, 9, false, 0}} {
			t.Run(fmt.Sprintf("%s/%v", layout, s), func(t *testing.T) {
				if layout == "workgroup" {
					bnLayout = LayoutWorkgroup
					defer func() { bnLayout = LayoutAuto }()
				}
				b, cache := newTestBN(t, d, s.c, s.affine)
				if layout == "synced" {
					b.Sync = dist.Single{}
				}
				shape := []int{s.n, s.c, s.hw}
				scratch, err := d.NewTensorOf(h, shape...)
				if err != nil {
					t.Fatal(err)
				}
				defer scratch.Release()
				ins, types := [][]int{shape, shape}, []gpu.DType{h, h} // x, dy
				outs, outTypes, acc := [][]int{shape}, []gpu.DType{h}, []bool{false}
				if s.affine {
					ins = append(ins, []int{s.c}, []int{s.c})
					outs, acc = append(outs, []int{s.c}, []int{s.c}), append(acc, true, true)
				}
				gamma := func(in [][]float64) []float64 {
					if s.affine {
						return in[2]
					}
					return nil
				}
				refStats := func(in [][]float64) (y, mean, invstd []float64) {
					y, mean, invstd = make([]float64, len(in[0])), make([]float64, s.c), make([]float64, s.c)
					var beta []float64
					if s.affine {
						beta = in[3]
					}
					ref.BatchNorm(y, mean, invstd, in[0], gamma(in), beta, s.n, s.c, s.hw, 1e-5)
					return y, mean, invstd
				}
				bind := func(in, out []*gpu.Tensor) {
					if s.affine {
						borrow(t, b, in[2], in[3], out[1], out[2])
					}
				}
				// Forward: y only (the first output; the others, unused, must
				// stay as they were drawn).
				gputest.Check(t, d, kcheck.Op{
					Inputs: ins, Outputs: outs, Accumulate: append([]bool{false}, acc[1:]...), InTypes: types, OutTypes: outTypes,
					Tol: kcheck.HalfStorage,
					GPU: func(r *gpu.Recorder, out, in []*gpu.Tensor) error {
						bind(in, out)
						return b.Forward(r, out[0], cache, in[0], s.n, s.hw, true)
					},
					Ref: func(out, in [][]float64) {
						y, _, _ := refStats(in)
						copy(out[0], y)
					},
				})
				gputest.Check(t, d, kcheck.Op{
					Inputs: ins, Outputs: outs, Accumulate: acc, InTypes: types, OutTypes: outTypes,
					Tol: kcheck.HalfStorage,
					GPU: func(r *gpu.Recorder, out, in []*gpu.Tensor) error {
						bind(in, out)
						if err := b.Forward(r, scratch, cache, in[0], s.n, s.hw, true); err != nil {
							return err
						}
						return b.Backward(r, out[0], in[1], in[0], cache, s.n, s.hw)
					},
					Ref: func(out, in [][]float64) {
						_, mean, invstd := refStats(in)
						var dg, db []float64
						if s.affine {
							dg, db = make([]float64, s.c), make([]float64, s.c)
						}
						ref.BatchNormBackward(out[0], dg, db, in[1], in[0], mean, invstd, gamma(in), s.n, s.c, s.hw)
						for j := range dg {
							out[1][j] += dg[j]
							out[2][j] += db[j]
						}
					},
				})
			})
		}
	}
	// Evaluation with the running statistics.
	const n, c, hw = 5, 17, 9
	b, _ := newTestBN(t, d, c, true)
	own := [2]*gpu.Tensor{b.RunningMean, b.RunningVar}
	defer func() { b.RunningMean, b.RunningVar = own[0], own[1] }()
	gputest.Check(t, d, kcheck.Op{
		Inputs: [][]int{{n, c, hw}, {c}, {c}}, Outputs: [][]int{{n, c, hw}}, InTypes: []gpu.DType{h}, OutTypes: []gpu.DType{h},
		Tol: kcheck.HalfStorage,
		Draw: func(r *rand.Rand, i, k int) []float64 {
			v := kcheck.Normal(r, k)
			if i == 2 {
				for j := range v {
					v[j] = 0.5 + v[j]*v[j]
				}
			}
			return v
		},
		GPU: func(r *gpu.Recorder, out, in []*gpu.Tensor) error {
			b.RunningMean, b.RunningVar = in[1], in[2]
			return b.Forward(r, out[0], nil, in[0], n, hw, false)
		},
		Ref: func(out, in [][]float64) {
			ref.BatchNormEval(out[0], in[0], in[1], in[2], constant64(c, 1), constant64(c, 0), n, c, hw, 1e-5)
		},
	})
}
