package ref

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// GradCheck compares a reference backward pass with central finite
// differences of the reference forward pass, all in float64. It checks the
// scalar L = Σ dout·forward(ins) for a random dout: backward(ins, dout) must
// return dL/d(ins[i]) for every input. At most samples entries of each input
// are perturbed (all of them when the input is smaller). The error is
// relative: |numeric − analytic| ≤ tol·max(1, |numeric|) per entry.
func GradCheck(rng *rand.Rand, ins [][]float64, forward func(ins [][]float64) []float64,
	backward func(ins [][]float64, dout []float64) [][]float64, samples int, tol float64) error {
	out := forward(ins)
	dout := make([]float64, len(out))
	for i := range dout {
		dout[i] = rng.NormFloat64()
	}
	loss := func() float64 {
		s := 0.0
		for i, v := range forward(ins) {
			s += dout[i] * v
		}
		return s
	}
	grads := backward(ins, dout)
	if len(grads) != len(ins) {
		return fmt.Errorf("backward returned %d gradients for %d inputs", len(grads), len(ins))
	}
	central := func(x []float64, j int, h float64) float64 {
		orig := x[j]
		x[j] = orig + h
		lp := loss()
		x[j] = orig - h
		lm := loss()
		x[j] = orig
		return (lp - lm) / (2 * h)
	}
	for i, x := range ins {
		if grads[i] == nil {
			continue // an input without a gradient, such as labels
		}
		idx := rng.Perm(len(x))
		if len(idx) > samples {
			idx = idx[:samples]
		}
		for _, j := range idx {
			// A step of 1e-6 can carry one of the thousands of outputs a
			// parameter feeds across a kink (a fused ReLU at 0), where the
			// difference is not the derivative; a hundred times smaller
			// step rarely straddles one, while a wrong gradient stays
			// wrong at every step.
			var num float64
			for _, h := range []float64{1e-6, 1e-8} {
				if num = central(x, j, h); math.Abs(num-grads[i][j]) <= tol*math.Max(1, math.Abs(num)) {
					break
				}
			}
			if d := math.Abs(num - grads[i][j]); !(d <= tol*math.Max(1, math.Abs(num))) {
				return fmt.Errorf("input %d element %d: analytic gradient %.9g, finite difference %.9g", i, j, grads[i][j], num)
			}
		}
	}
	return nil
}
