package loss

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// TestInfoNCE checks the cross-entropy ablation: its float64 gradient
// against finite differences, then the GPU objective and gradients against
// float64 on odd shapes, outputs NaN-poisoned.
func TestInfoNCE(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const tau = 0.2
	// One-wide embeddings are left out: scaled to unit length they are ±1,
	// so the objective is a sum of near-zero cross-entropies whose float32
	// rounding (log(1 + e^−10)) no relative bound of 1e-4 can hold.
	for _, s := range [][2]int{{2, 3}, {3, 17}, {17, 5}, {65, 33}} {
		n, dim := s[0], s[1]
		za, zb := kcheck.Normal(rng, n*dim), kcheck.Normal(rng, n*dim)
		err := gradCheckPair(rng, za, zb,
			func(za, zb []float64) float64 { return ref.InfoNCE(za, zb, n, dim, tau) },
			func(dza, dzb, za, zb []float64) { ref.InfoNCEBackward(dza, dzb, za, zb, n, dim, tau) })
		if err != nil {
			t.Errorf("%dx%d finite differences: %v", n, dim, err)
		}
		t.Run(fmt.Sprintf("%dx%d", n, dim), func(t *testing.T) {
			l, err := NewInfoNCE(d, n, dim, tau)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			gputest.Check(t, d, kcheck.Op{
				Inputs: [][]int{{n, dim}, {n, dim}}, Outputs: [][]int{{1}, {n, dim}, {n, dim}}, Tol: kcheck.Reduction,
				GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
					if err := l.Forward(r, outs[0], ins[0], ins[1]); err != nil {
						return err
					}
					return l.Backward(r, outs[1], outs[2])
				},
				Ref: func(outs, ins [][]float64) {
					outs[0][0] = ref.InfoNCE(ins[0], ins[1], n, dim, tau)
					ref.InfoNCEBackward(outs[1], outs[2], ins[0], ins[1], n, dim, tau)
				},
			})
		})
	}
}
