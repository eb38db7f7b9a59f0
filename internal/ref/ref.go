// Package ref holds float64 reference implementations that bt's GPU kernels
// are tested against. They are written for clarity, not speed.
package ref

import (
	"fmt"
	"math"
)

// Gemm computes c = alpha·op(a)·op(b) + beta·c for batch row-major
// matrices; op(a) is m×k (a stored k×m when transA), op(b) is k×n (b stored
// n×k when transB), c is m×n.
func Gemm(c, a, b []float64, batch, m, n, k int, transA, transB bool, alpha, beta float64) {
	for z := range batch {
		az, bz, cz := a[z*m*k:], b[z*k*n:], c[z*m*n:]
		for i := range m {
			for j := range n {
				s := 0.0
				for l := range k {
					av := az[i*k+l]
					if transA {
						av = az[l*m+i]
					}
					bv := bz[l*n+j]
					if transB {
						bv = bz[j*k+l]
					}
					s += av * bv
				}
				v := alpha * s
				if beta != 0 {
					v += beta * cz[i*n+j]
				}
				cz[i*n+j] = v
			}
		}
	}
}

// Reduce3 applies f to every x[i, j, l] of x viewed as [a, b, c] and sums
// the results over i and l into out[j].
func Reduce3(out, x []float64, a, b, c int, f func(float64) float64) {
	for j := range b {
		s := 0.0
		for i := range a {
			for l := range c {
				s += f(x[(i*b+j)*c+l])
			}
		}
		out[j] = s
	}
}

// MeanVar computes the mean and biased variance of x viewed as [a, b, c]
// over a and c, in two passes.
func MeanVar(mean, variance, x []float64, a, b, c int) {
	n := float64(a * c)
	Reduce3(mean, x, a, b, c, func(v float64) float64 { return v })
	for j := range mean {
		mean[j] /= n
	}
	for j := range b {
		s := 0.0
		for i := range a {
			for l := range c {
				d := x[(i*b+j)*c+l] - mean[j]
				s += d * d
			}
		}
		variance[j] = s / n
	}
}

// Compare checks that got has no NaN where want has none (an element the
// kernel never wrote keeps its NaN poison) and that ‖got−want‖/‖want‖ ≤ tol,
// or ‖got−want‖ ≤ tol where want is all zero.
func Compare(got, want []float64, tol float64) error {
	rel, err := RelErr(got, want)
	if err != nil {
		return err
	}
	if !(rel <= tol) {
		return fmt.Errorf("relative error %.3g exceeds %.3g", rel, tol)
	}
	return nil
}

// RelErr is ‖got − want‖/‖want‖ over the elements finite in want (the
// absolute ‖got − want‖ where want is all zeros), or an error where an
// element is NaN or infinite in one and not in the other: unwritten or
// overflowed. Every check in bt measures agreement with it.
func RelErr(got, want []float64) (float64, error) {
	if len(got) != len(want) {
		return 0, fmt.Errorf("got %d values, want %d", len(got), len(want))
	}
	var diff, norm float64
	for i := range got {
		if math.IsNaN(got[i]) != math.IsNaN(want[i]) || math.IsInf(got[i], 0) != math.IsInf(want[i], 0) {
			return 0, fmt.Errorf("element %d is %v, want %v (unwritten or overflowed)", i, got[i], want[i])
		}
		if math.IsNaN(want[i]) || math.IsInf(want[i], 0) {
			continue
		}
		d := got[i] - want[i]
		diff += d * d
		norm += want[i] * want[i]
	}
	rel := math.Sqrt(diff)
	if norm > 0 {
		rel /= math.Sqrt(norm)
	}
	return rel, nil
}
