package layers

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/ref"
)

func TestLinear(t *testing.T) {
	d := gputest.Device(t)
	for _, tc := range []struct {
		n, in, out int
		bias       bool
	}{{1, 1, 1, true}, {3, 17, 5, false}, {17, 65, 129, true}, {65, 3, 33, false}} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			l := &Linear{In: tc.in, Out: tc.out}
			inputs := [][]int{{tc.n, tc.in}, {tc.out, tc.in}}
			if tc.bias {
				inputs = append(inputs, []int{tc.out})
			}
			bind := func(ins, grads []*gpu.Tensor) {
				l.Weight = &Param{Value: ins[1], Grad: at(grads, 1)}
				l.Bias = nil
				if tc.bias {
					l.Bias = &Param{Value: ins[2], Grad: at(grads, 2)}
				}
			}
			bias := func(ins [][]float64) []float64 {
				if tc.bias {
					return ins[2]
				}
				return nil
			}
			gputest.CheckLayer(t, d, gputest.Layer{
				Inputs: inputs, Output: []int{tc.n, tc.out}, Params: []bool{false, true, true},
				Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
					bind(ins, nil)
					return l.Forward(r, out, ins[0], tc.n)
				},
				Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, ins []*gpu.Tensor) error {
					bind(ins, grads)
					return l.Backward(r, grads[0], dout, ins[0], tc.n)
				},
				RefForward: func(ins [][]float64) []float64 {
					return ref.LinearForward(ins[0], ins[1], bias(ins), tc.n, tc.in, tc.out)
				},
				RefBackward: func(ins [][]float64, dout []float64) [][]float64 {
					dx, dw, db := ref.LinearBackward(ins[0], ins[1], bias(ins), dout, tc.n, tc.in, tc.out)
					if tc.bias {
						return [][]float64{dx, dw, db}
					}
					return [][]float64{dx, dw}
				},
			})
		})
	}
}
