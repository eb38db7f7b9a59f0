// Package kcheck runs a GPU kernel and its float64 reference on the same
// fresh random inputs and compares them: outputs are poisoned with NaN
// before the kernel runs, every element must have been written, and the
// relative error ‖out−ref‖/‖ref‖ must stay within a stated tolerance. The
// tests use it through gputest, and the self-check suite that the tests
// and `bt devices` share (internal/selfcheck).
package kcheck

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/x448/float16"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/ref"
)

// Tolerances for fp32 kernels against float64 references, and for
// kernels whose output is stored as f16 (mixed precision): rounding to
// f16 alone errs by up to 2⁻¹¹ ≈ 4.9e-4 of each value, and the sums
// before it in f32 add Reduction's share. Inputs stored as f16 cost
// nothing here: the reference sees the very f16 values the kernel reads.
const (
	Elementwise = 1e-5
	Reduction   = 1e-4
	HalfStorage = 1e-3
)

// Normal fills a slice of n standard normal values.
func Normal(r *rand.Rand, n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = r.NormFloat64()
	}
	return v
}

// Op is one kernel under test.
type Op struct {
	// Inputs are the shapes of the input tensors, drawn from N(0, 1) unless
	// Draw is set.
	Inputs [][]int
	// Outputs are the shapes of the output tensors. Unless Accumulate marks
	// an output, it is filled with NaN before the kernel runs and the
	// reference receives it zeroed; accumulated outputs start from random
	// values that the reference receives too.
	Outputs    [][]int
	Accumulate []bool
	// Draw, if set, draws input i's values instead of N(0, 1).
	Draw func(r *rand.Rand, i, n int) []float64
	// Start, if set, draws accumulated output i's starting values instead
	// of N(0, 1): values of one sign where the kernel adds to them what may
	// cancel them (running statistics), so that the result's relative error
	// measures the kernel, not the cancellation.
	Start func(r *rand.Rand, i, n int) []float64
	// GPU records the kernel.
	GPU func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error
	// Ref computes the outputs in float64.
	Ref func(outs, ins [][]float64)
	// Tol is the largest relative error allowed for every output.
	Tol float64
	// InTypes and OutTypes are the element types of the inputs and the
	// outputs on the device; missing entries are F32.
	InTypes, OutTypes []gpu.DType
}

// typeOf is entry i of ts, F32 past its end.
func typeOf(ts []gpu.DType, i int) gpu.DType {
	if i < len(ts) {
		return ts[i]
	}
	return gpu.F32
}

// Round rounds v to the values a tensor of type t holds.
func Round(v []float64, t gpu.DType) []float64 {
	if t == gpu.F16 {
		out := make([]float64, len(v))
		for i, x := range v {
			out[i] = float64(float16.Fromfloat32(float32(x)).Float32())
		}
		return out
	}
	return To64(To32(v))
}

// Run runs op on d and on its reference with inputs drawn from rng and
// returns an error describing the first output that disagrees.
func Run(d *gpu.Device, rng *rand.Rand, op Op) (err error) {
	var release []*gpu.Tensor
	defer func() {
		for _, x := range release {
			x.Release()
		}
	}()
	alloc := func(vals []float64, t gpu.DType, shape []int) (*gpu.Tensor, error) {
		x, err := d.NewTensorOf(t, shape...)
		if err != nil {
			return nil, err
		}
		release = append(release, x)
		return x, x.Upload(To32(vals))
	}
	ins := make([][]float64, len(op.Inputs))
	gins := make([]*gpu.Tensor, len(op.Inputs))
	for i, s := range op.Inputs {
		if op.Draw != nil {
			ins[i] = op.Draw(rng, i, Numel(s))
		} else {
			ins[i] = Normal(rng, Numel(s))
		}
		// The reference sees exactly the values the GPU sees.
		ins[i] = Round(ins[i], typeOf(op.InTypes, i))
		if gins[i], err = alloc(ins[i], typeOf(op.InTypes, i), s); err != nil {
			return err
		}
	}
	outs := make([][]float64, len(op.Outputs))
	gouts := make([]*gpu.Tensor, len(op.Outputs))
	for i, s := range op.Outputs {
		n := Numel(s)
		init := nans(n)
		if i < len(op.Accumulate) && op.Accumulate[i] {
			if op.Start != nil {
				outs[i] = Round(op.Start(rng, i, n), typeOf(op.OutTypes, i))
			} else {
				outs[i] = Round(Normal(rng, n), typeOf(op.OutTypes, i))
			}
			init = outs[i]
		} else {
			outs[i] = make([]float64, n)
		}
		if gouts[i], err = alloc(init, typeOf(op.OutTypes, i), s); err != nil {
			return err
		}
	}
	if err := d.Run(func(r *gpu.Recorder) error { return op.GPU(r, gouts, gins) }); err != nil {
		return err
	}
	op.Ref(outs, ins)
	for i, g := range gouts {
		got, err := g.Download()
		if err != nil {
			return err
		}
		if err := ref.Compare(To64(got), outs[i], op.Tol); err != nil {
			return fmt.Errorf("output %d %v: %v", i, op.Outputs[i], err)
		}
	}
	return nil
}

// Layer describes a layer for RunLayer: its forward and backward passes
// on the GPU and in float64.
type Layer struct {
	// Inputs are the forward inputs: activations first, then parameters.
	Inputs [][]int
	// Output is the forward output's shape.
	Output []int
	// Params marks the inputs whose gradients accumulate (+=), as parameter
	// gradients do; the others are written (=).
	Params []bool
	// Draw, if set, draws input i's values instead of N(0, 1).
	Draw func(r *rand.Rand, i, n int) []float64

	Forward func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error
	// Backward writes or accumulates every input's gradient given dout; it
	// may rerun the forward pass in r for what it needs.
	Backward func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, ins []*gpu.Tensor) error

	RefForward  func(ins [][]float64) []float64
	RefBackward func(ins [][]float64, dout []float64) [][]float64

	// Tol bounds the GPU's relative error (Reduction if zero).
	Tol float64
	// Half stores the activations as f16 (mixed precision): input 0, the
	// output and their gradients; parameters and their gradients stay f32.
	Half bool
}

// RunLayer checks a layer three ways: the float64 backward against finite
// differences of the float64 forward, then the GPU forward and the GPU
// backward against the float64 ones, all on fresh random inputs from rng.
// It returns every disagreement it finds.
func RunLayer(d *gpu.Device, rng *rand.Rand, l Layer) error {
	tol := l.Tol
	if tol == 0 {
		tol = Reduction
	}
	draw := func(i, n int) []float64 {
		if l.Draw != nil {
			return l.Draw(rng, i, n)
		}
		return Normal(rng, n)
	}
	var errs []error
	ins := make([][]float64, len(l.Inputs))
	for i, s := range l.Inputs {
		ins[i] = draw(i, Numel(s))
	}
	if err := ref.GradCheck(rng, ins, l.RefForward, l.RefBackward, 12, 1e-5); err != nil {
		errs = append(errs, fmt.Errorf("float64 backward disagrees with finite differences: %w", err))
	}
	inTypes, outTypes := []gpu.DType(nil), []gpu.DType(nil)
	if l.Half {
		inTypes, outTypes = []gpu.DType{gpu.F16}, []gpu.DType{gpu.F16}
	}
	if err := Run(d, rng, Op{
		Inputs: l.Inputs, Outputs: [][]int{l.Output}, Tol: tol, InTypes: inTypes, OutTypes: outTypes,
		Draw: func(_ *rand.Rand, i, n int) []float64 { return draw(i, n) },
		GPU:  func(r *gpu.Recorder, outs, gins []*gpu.Tensor) error { return l.Forward(r, outs[0], gins) },
		Ref:  func(outs, rins [][]float64) { copy(outs[0], l.RefForward(rins)) },
	}); err != nil {
		errs = append(errs, fmt.Errorf("forward: %w", err))
	}
	n := len(l.Inputs)
	if l.Half {
		// dout, after the inputs, is f16 too.
		inTypes = make([]gpu.DType, n+1)
		inTypes[0], inTypes[n] = gpu.F16, gpu.F16
	}
	if err := Run(d, rng, Op{
		Inputs: append(append([][]int{}, l.Inputs...), l.Output), Outputs: l.Inputs, Accumulate: l.Params, Tol: tol,
		InTypes: inTypes, OutTypes: outTypes,
		Draw: func(_ *rand.Rand, i, m int) []float64 {
			if i == n {
				return Normal(rng, m)
			}
			return draw(i, m)
		},
		GPU: func(r *gpu.Recorder, grads, gins []*gpu.Tensor) error {
			return l.Backward(r, grads, gins[n], gins[:n])
		},
		Ref: func(grads, rins [][]float64) {
			for i, g := range l.RefBackward(rins[:n], rins[n]) {
				for j := range g {
					if i < len(l.Params) && l.Params[i] {
						grads[i][j] += g[j]
					} else {
						grads[i][j] = g[j]
					}
				}
			}
		},
	}); err != nil {
		errs = append(errs, fmt.Errorf("backward: %w", err))
	}
	return errors.Join(errs...)
}

// Numel is the number of elements of a shape.
func Numel(s []int) int {
	n := 1
	for _, v := range s {
		n *= v
	}
	return n
}

func nans(n int) []float64 {
	v := make([]float64, n)
	for i := range v {
		v[i] = math.NaN()
	}
	return v
}

// To32 converts to float32.
func To32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}

// To64 converts to float64.
func To64(v []float32) []float64 {
	out := make([]float64, len(v))
	for i, x := range v {
		out[i] = float64(x)
	}
	return out
}

// Loss is a loss of two views [n, dim] on the device: Forward writes the
// loss, Backward both views' gradients.
type Loss interface {
	Forward(r *gpu.Recorder, loss, za, zb *gpu.Tensor) error
	Backward(r *gpu.Recorder, dza, dzb *gpu.Tensor) error
}

// LossOp checks l's forward and backward on two correlated views [n, dim]
// drawn afresh (ref.BTViews): the outputs are the loss [1] and both
// gradients [n, dim], which reference computes in float64.
func LossOp(l Loss, n, dim int, reference func(outs, ins [][]float64)) Op {
	var zb []float64
	return Op{
		Inputs:  [][]int{{n, dim}, {n, dim}},
		Outputs: [][]int{{1}, {n, dim}, {n, dim}},
		Tol:     Reduction,
		Draw: func(rng *rand.Rand, i, _ int) []float64 {
			if i == 1 {
				return zb
			}
			var za []float64
			za, zb = ref.BTViews(rng, n, dim)
			return za
		},
		GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
			if err := l.Forward(r, outs[0], ins[0], ins[1]); err != nil {
				return err
			}
			return l.Backward(r, outs[1], outs[2])
		},
		Ref: reference,
	}
}

// BTLossRef is LossOp's reference for the Barlow Twins loss with lambda
// and scale; it keeps the loss's terms in *terms, for checking the
// statistics the device reports.
func BTLossRef(n, dim int, lambda, scale float64, terms *ref.BTTerms) func(outs, ins [][]float64) {
	return func(outs, ins [][]float64) {
		*terms = ref.BTLoss(ins[0], ins[1], n, dim, lambda, scale)
		outs[0][0] = terms.Loss
		ref.BTLossBackward(outs[1], outs[2], ins[0], ins[1], n, dim, lambda, scale)
	}
}
