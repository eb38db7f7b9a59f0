package layers

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/ref"
)

// TestRowNorm checks both reduction paths (subgroups and workgroup memory)
// on rows shorter and longer than a workgroup.
func TestRowNorm(t *testing.T) {
	gputest.SubgroupModes(t, func(t *testing.T, d *gpu.Device) {
		// Rows of 2 are left out for "std": standardised, they are always ±1
		// and their gradient is zero up to eps, which no relative error can
		// measure.
		for _, mode := range []string{"l2", "std"} {
			for _, s := range [][2]int{{1, 3}, {3, 17}, {17, 65}, {5, 129}, {65, 3}, {3, 1000}} {
				n, dim := s[0], s[1]
				m := RowNorm{Mode: mode, Eps: 1e-5}
				t.Run(fmt.Sprintf("%s/%dx%d", mode, n, dim), func(t *testing.T) {
					gputest.CheckLayer(t, d, gputest.Layer{
						Inputs: [][]int{{n, dim}}, Output: []int{n, dim},
						Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
							inv, err := r.Device().NewTensor(n)
							if err != nil {
								return err
							}
							defer inv.Release()
							return m.Forward(r, out, inv, ins[0], n, dim)
						},
						Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, ins []*gpu.Tensor) error {
							y, err := r.Device().NewTensor(n, dim)
							if err != nil {
								return err
							}
							defer y.Release()
							inv, err := r.Device().NewTensor(n)
							if err != nil {
								return err
							}
							defer inv.Release()
							if err := m.Forward(r, y, inv, ins[0], n, dim); err != nil {
								return err
							}
							return m.Backward(r, grads[0], dout, y, inv, n, dim)
						},
						RefForward: func(ins [][]float64) []float64 {
							y, _ := ref.RowNorm(ins[0], n, dim, mode, 1e-5)
							return y
						},
						RefBackward: func(ins [][]float64, dout []float64) [][]float64 {
							y, inv := ref.RowNorm(ins[0], n, dim, mode, 1e-5)
							return [][]float64{ref.RowNormBackward(dout, y, inv, n, dim, mode)}
						},
					})
				})
			}
		}
	})
}
