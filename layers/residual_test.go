package layers

import (
	"fmt"
	"math"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/ref"
)

// TestResidualBlock checks a toy residual block, out = ReLU(BN(x) + x),
// built from BatchNorm, ResidualAdd, gpu.ReLU and, going back, ReLUBackward,
// BatchNorm.Backward and ResidualJoin: the input's gradient is the sum of
// the two paths', γ and β accumulate theirs.
func TestResidualBlock(t *testing.T) {
	d := gputest.Device(t)
	for _, s := range [][3]int{{3, 4, 9}, {17, 3, 1}, {2, 5, 49}} {
		n, c, hw := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("%dx%dx%d", n, c, hw), func(t *testing.T) {
			b, cache := newTestBN(t, d, c, true)
			size := n * c * hw
			tmp := make([]*gpu.Tensor, 5) // h = BN(x), sum, dSum, dXBranch, the recomputed output
			for i := range tmp {
				tmp[i] = upload(t, d, make([]float64, size), n, c, hw)
			}
			h, sum, dSum, dBranch, out := tmp[0], tmp[1], tmp[2], tmp[3], tmp[4]
			forward := func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
				if err := b.Forward(r, h, cache, ins[0], n, hw, true); err != nil {
					return err
				}
				if err := ResidualAdd(r, sum, h, ins[0]); err != nil {
					return err
				}
				return gpu.ReLU(r, out, sum)
			}
			refSum := func(ins [][]float64) ([]float64, []float64, []float64) {
				y, mean, invstd := make([]float64, size), make([]float64, c), make([]float64, c)
				ref.BatchNorm(y, mean, invstd, ins[0], ins[1], ins[2], n, c, hw, 1e-5)
				for i := range y {
					y[i] += ins[0][i]
				}
				return y, mean, invstd
			}
			gputest.CheckLayer(t, d, gputest.Layer{
				Inputs: [][]int{{n, c, hw}, {c}, {c}}, Output: []int{n, c, hw}, Params: []bool{false, true, true},
				Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
					borrow(t, b, ins[1], ins[2], nil, nil)
					return forward(r, out, ins)
				},
				Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, ins []*gpu.Tensor) error {
					borrow(t, b, ins[1], ins[2], grads[1], grads[2])
					// The forward's output is not kept; ReLU's backward reads
					// its input, the sum, instead.
					if err := forward(r, out, ins); err != nil {
						return err
					}
					if err := gpu.ReLUBackward(r, dSum, dout, sum); err != nil {
						return err
					}
					if err := b.Backward(r, dBranch, dSum, ins[0], cache, n, hw); err != nil {
						return err
					}
					return ResidualJoin(r, grads[0], dBranch, dSum)
				},
				RefForward: func(ins [][]float64) []float64 {
					y, _, _ := refSum(ins)
					for i := range y {
						y[i] = math.Max(y[i], 0)
					}
					return y
				},
				RefBackward: func(ins [][]float64, dout []float64) [][]float64 {
					y, mean, invstd := refSum(ins)
					dsum := make([]float64, size)
					for i := range dsum {
						if y[i] > 0 {
							dsum[i] = dout[i]
						}
					}
					dx, dg, db := make([]float64, size), make([]float64, c), make([]float64, c)
					ref.BatchNormBackward(dx, dg, db, dsum, ins[0], mean, invstd, ins[1], n, c, hw)
					for i := range dx {
						dx[i] += dsum[i]
					}
					return [][]float64{dx, dg, db}
				},
			})
		})
	}
}
