package layers

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

func TestCrossEntropy(t *testing.T) {
	d := gputest.Device(t)
	for _, s := range [][2]int{{1, 1}, {3, 2}, {17, 10}, {65, 129}, {5, 1000}} {
		n, k := s[0], s[1]
		draw := func(r *rand.Rand, i, m int) []float64 {
			if i == 1 { // labels
				v := make([]float64, m)
				for j := range v {
					v[j] = float64(r.IntN(k))
				}
				return v
			}
			v := kcheck.Normal(r, m)
			for j := range v {
				v[j] *= 5 // logits far apart, where a naive softmax overflows sooner
			}
			return v
		}
		t.Run(fmt.Sprintf("forward/%dx%d", n, k), func(t *testing.T) {
			gputest.Check(t, d, kcheck.Op{Inputs: [][]int{{n, k}, {n}}, Outputs: [][]int{{n}}, Draw: draw, Tol: kcheck.Reduction,
				GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return CrossEntropyForward(r, o[0], i[0], i[1], n, k) },
				Ref: func(o, i [][]float64) { copy(o[0], ref.CrossEntropy(i[0], i[1], n, k)) },
			})
		})
		t.Run(fmt.Sprintf("backward/%dx%d", n, k), func(t *testing.T) {
			gputest.Check(t, d, kcheck.Op{Inputs: [][]int{{n, k}, {n}}, Outputs: [][]int{{n, k}}, Draw: draw, Tol: kcheck.Reduction,
				GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
					return CrossEntropyBackward(r, o[0], i[0], i[1], n, k)
				},
				Ref: func(o, i [][]float64) {
					mean := make([]float64, n)
					for j := range mean {
						mean[j] = 1 / float64(n)
					}
					copy(o[0], ref.CrossEntropyBackward(i[0], i[1], mean, n, k))
				},
			})
		})
	}
	// The float64 backward against finite differences of the forward.
	rng := gputest.Rand(t)
	const n, k = 4, 7
	labels := []float64{0, 6, 3, 3}
	err := ref.GradCheck(rng, [][]float64{kcheck.Normal(rng, n*k)},
		func(in [][]float64) []float64 { return ref.CrossEntropy(in[0], labels, n, k) },
		func(in [][]float64, dout []float64) [][]float64 {
			return [][]float64{ref.CrossEntropyBackward(in[0], labels, dout, n, k)}
		}, 28, 1e-6)
	if err != nil {
		t.Error(err)
	}
}
