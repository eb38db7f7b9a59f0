package layers

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/ref"
)

func TestConv2D(t *testing.T) {
	d := gputest.Device(t)
	for _, tc := range []struct {
		n, cin, h, w, cout, k, stride, pad int
		bias                               bool
	}{
		{1, 1, 1, 1, 1, 1, 1, 0, true},
		{2, 3, 7, 5, 4, 3, 1, 1, false},
		{2, 3, 9, 9, 5, 3, 2, 1, true},
		{1, 2, 11, 11, 3, 7, 2, 3, false},
		{3, 4, 5, 5, 17, 1, 2, 0, true},
	} {
		t.Run(fmt.Sprintf("%+v", tc), func(t *testing.T) {
			c := &Conv2D{Cin: tc.cin, Cout: tc.cout, K: tc.k, Stride: tc.stride, Pad: tc.pad}
			oh, ow := c.OutSize(tc.h, tc.w)
			s := ref.ConvShape{N: tc.n, Cin: tc.cin, H: tc.h, W: tc.w, Cout: tc.cout, KH: tc.k, KW: tc.k, Stride: tc.stride, Pad: tc.pad}
			inputs := [][]int{{tc.n, tc.cin, tc.h, tc.w}, {tc.cout, tc.cin, tc.k, tc.k}}
			if tc.bias {
				inputs = append(inputs, []int{tc.cout})
			}
			// bind points the layer at the test's tensors.
			bind := func(ins, grads []*gpu.Tensor) {
				c.Weight = &Param{Value: ins[1], Grad: at(grads, 1)}
				c.Bias = nil
				if tc.bias {
					c.Bias = &Param{Value: ins[2], Grad: at(grads, 2)}
				}
			}
			bias := func(ins [][]float64) []float64 {
				if tc.bias {
					return ins[2]
				}
				return nil
			}
			gputest.CheckLayer(t, d, gputest.Layer{
				Inputs: inputs, Output: []int{tc.n, tc.cout, oh, ow}, Params: []bool{false, true, true},
				Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
					bind(ins, nil)
					return c.Forward(r, out, ins[0], tc.n, tc.h, tc.w)
				},
				Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, ins []*gpu.Tensor) error {
					bind(ins, grads)
					return c.Backward(r, grads[0], dout, ins[0], tc.n, tc.h, tc.w)
				},
				RefForward: func(ins [][]float64) []float64 { return ref.ConvForward(s, ins[0], ins[1], bias(ins)) },
				RefBackward: func(ins [][]float64, dout []float64) [][]float64 {
					dx, dw, db := ref.ConvBackward(s, ins[0], ins[1], bias(ins), dout)
					if tc.bias {
						return [][]float64{dx, dw, db}
					}
					return [][]float64{dx, dw}
				},
			})
		})
	}
}

// at returns ts[i], or nil when ts is too short (forward passes bind no
// gradients).
func at(ts []*gpu.Tensor, i int) *gpu.Tensor {
	if i < len(ts) {
		return ts[i]
	}
	return nil
}
