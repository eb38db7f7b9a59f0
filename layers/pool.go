package layers

import (
	"fmt"
	"slices"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/shaders"
)

// poolWG is the workgroup size of the pooling kernels.
const poolWG = 256

// maxPlane bounds H·W for MaxPool2D: indices travel as floats, exact
// below 2²⁴.
const maxPlane = 1 << 24

// MaxPool2D is PyTorch's MaxPool2d(K, Stride, Pad) with dilation 1 and
// rounding down: the ImageNet ResNet stem uses 3, 2, 1. Its forward keeps,
// per output element, the index within its plane of the input element that
// won, so that backward reads one value per window instead of rescanning
// K·K inputs, and the gradient goes exactly where the forward chose.
type MaxPool2D struct {
	K, Stride, Pad int
	d              *gpu.Device
}

// NewMaxPool2D returns a K×K max pooling with the given stride and padding.
// As in PyTorch, the padding may be at most half the window, so that every
// window holds an input element.
func NewMaxPool2D(d *gpu.Device, k, stride, pad int) (*MaxPool2D, error) {
	if k < 1 || stride < 1 || pad < 0 || pad > k/2 {
		return nil, fmt.Errorf("layers: MaxPool2D(%d, %d, %d): need kernel ≥ 1, stride ≥ 1 and 0 ≤ padding ≤ kernel/2", k, stride, pad)
	}
	return &MaxPool2D{K: k, Stride: stride, Pad: pad, d: d}, nil
}

// OutSize is the output's height and width for an input of h×w; 0 where
// the padded input is smaller than the window.
func (m *MaxPool2D) OutSize(h, w int) (oh, ow int) {
	size := func(x int) int {
		if x+2*m.Pad < m.K {
			return 0
		}
		return (x+2*m.Pad-m.K)/m.Stride + 1
	}
	return size(h), size(w)
}

func (m *MaxPool2D) prepare(op shaders.PoolOp, n, c, h, w int, ts ...named) (*gpu.Kernel, error) {
	if n < 1 || c < 1 || h < 1 || w < 1 {
		return nil, fmt.Errorf("layers: MaxPool2D %s: N=%d, C=%d, H=%d, W=%d must be ≥ 1", op, n, c, h, w)
	}
	if oh, ow := m.OutSize(h, w); oh < 1 || ow < 1 {
		return nil, fmt.Errorf("layers: MaxPool2D(%d, %d, %d) %s: input %d×%d is smaller than the window", m.K, m.Stride, m.Pad, op, h, w)
	}
	if h*w > maxPlane {
		return nil, fmt.Errorf("layers: MaxPool2D %s: planes of %d×%d exceed 2²⁴ elements", op, h, w)
	}
	if err := checkSizes("MaxPool2D "+string(op), ts); err != nil {
		return nil, err
	}
	return m.d.Kernel("pool", shaders.Pool{Op: op, K: m.K, S: m.Stride, Pad: m.Pad,
		In: typeOf(ts, "in", "dOut"), Out: typeOf(ts, "out", "dIn"), Threads: shaders.Threads{WG: poolWG}})
}

// Forward writes out, [N, C, OH, OW], the maxima of in, [N, C, H, W], and
// argmax, [N, C, OH, OW], which Backward needs.
func (m *MaxPool2D) Forward(r *gpu.Recorder, out, argmax, in *gpu.Tensor, n, c, h, w int) error {
	oh, ow := m.OutSize(h, w)
	k, err := m.prepare("max", n, c, h, w, named{"out", out, n * c * oh * ow},
		named{"argmax", argmax, n * c * oh * ow}, named{"in", in, n * c * h * w})
	if err != nil {
		return err
	}
	return dispatch1D(r, m.d, k, n*c*oh*ow, gpu.Params{}.U(n*c).U(h).U(w).U(oh).U(ow), out, argmax, in)
}

// Backward writes dIn, [N, C, H, W], from dOut and the forward's argmax,
// [N, C, OH, OW] each: every input element receives the gradients of the
// windows that chose it, and 0 if none did.
func (m *MaxPool2D) Backward(r *gpu.Recorder, dIn, dOut, argmax *gpu.Tensor, n, c, h, w int) error {
	oh, ow := m.OutSize(h, w)
	k, err := m.prepare("max_backward", n, c, h, w, named{"dIn", dIn, n * c * h * w},
		named{"dOut", dOut, n * c * oh * ow}, named{"argmax", argmax, n * c * oh * ow})
	if err != nil {
		return err
	}
	return dispatch1D(r, m.d, k, n*c*h*w, gpu.Params{}.U(n*c).U(h).U(w).U(oh).U(ow), dIn, dOut, argmax)
}

// GlobalAvgPool averages each H×W plane of an NCHW tensor, ResNet's last
// step before the representation: [N, C, H, W] → [N, C].
type GlobalAvgPool struct{ d *gpu.Device }

// NewGlobalAvgPool returns a global average pooling.
func NewGlobalAvgPool(d *gpu.Device) *GlobalAvgPool { return &GlobalAvgPool{d: d} }

func (g *GlobalAvgPool) prepare(op shaders.PoolOp, n, c, hw int, ts ...named) (*gpu.Kernel, error) {
	if n < 1 || c < 1 || hw < 1 {
		return nil, fmt.Errorf("layers: GlobalAvgPool %s: N=%d, C=%d, H·W=%d must be ≥ 1", op, n, c, hw)
	}
	if err := checkSizes("GlobalAvgPool "+string(op), ts); err != nil {
		return nil, err
	}
	return g.d.Kernel("pool", shaders.Pool{Op: op, In: typeOf(ts, "in", "dOut"), Out: typeOf(ts, "out", "dIn"),
		Threads: shaders.Threads{WG: poolWG}})
}

// Forward writes out, [N, C], the means of the planes of in, [N, C, H·W].
func (g *GlobalAvgPool) Forward(r *gpu.Recorder, out, in *gpu.Tensor, n, c, hw int) error {
	k, err := g.prepare("avg", n, c, hw, named{"out", out, n * c}, named{"in", in, n * c * hw})
	if err != nil {
		return err
	}
	return dispatch1D(r, g.d, k, n*c, gpu.Params{}.U(n*c).U(hw).U(1).U(1).U(1), out, in)
}

// Backward writes dIn, [N, C, H·W], spreading each of dOut's values, [N, C],
// evenly over its plane.
func (g *GlobalAvgPool) Backward(r *gpu.Recorder, dIn, dOut *gpu.Tensor, n, c, hw int) error {
	k, err := g.prepare("avg_backward", n, c, hw, named{"dIn", dIn, n * c * hw}, named{"dOut", dOut, n * c})
	if err != nil {
		return err
	}
	return dispatch1D(r, g.d, k, n*c*hw, gpu.Params{}.U(n*c).U(hw).U(1).U(1).U(1), dIn, dOut)
}

// checkSizes reports the first tensor that is nil or of the wrong size.
func checkSizes(what string, ts []named) error {
	for _, x := range ts {
		if x.t == nil {
			return fmt.Errorf("layers: %s: %s is nil", what, x.name)
		}
		if x.t.Len() != x.n {
			return fmt.Errorf("layers: %s: %s is %v, needs %d elements", what, x.name, x.t.Shape, x.n)
		}
	}
	return nil
}

// dispatch1D records k with one thread per element of n, in workgroups of
// poolWG.
func dispatch1D(r *gpu.Recorder, d *gpu.Device, k *gpu.Kernel, n int, p gpu.Params, ts ...*gpu.Tensor) error {
	grid, err := spreadGrid(d, (n+poolWG-1)/poolWG)
	if err != nil {
		return err
	}
	return r.Dispatch(k, grid, p, ts...)
}

// typeOf is the element type of the checked tensor named one of names,
// for the pooling kernels' In (x, dy) and Out (y, dx): under mixed
// precision the activations are f16, and the global average pool's
// representation may be f32.
func typeOf(ts []named, names ...string) shaders.Elem {
	for _, x := range ts {
		if slices.Contains(names, x.name) {
			return shaders.Elem(x.t.DType.String())
		}
	}
	return shaders.F32
}
