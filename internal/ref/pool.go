package ref

import "math"

// PoolOut is the output size of a pooling window of k with stride s and
// padding pad over size in, rounding down as PyTorch does by default.
func PoolOut(in, k, s, pad int) int { return (in+2*pad-k)/s + 1 }

// MaxPool2D takes the maximum of every k×k window (stride s, padding pad,
// padded positions never chosen) of x, [n·c, h, w] planes, into y, [n·c, oh,
// ow], and writes into arg the index h'·w+w' within its plane of the element
// chosen. Ties go to the first in scan order and a NaN wins, as in
// PyTorch's kernels.
func MaxPool2D(y []float64, arg []int, x []float64, nc, h, w, k, s, pad int) {
	oh, ow := PoolOut(h, k, s, pad), PoolOut(w, k, s, pad)
	for p := range nc {
		for i := range oh {
			for j := range ow {
				best, at := math.Inf(-1), -1
				for a := i*s - pad; a < i*s-pad+k; a++ {
					for b := j*s - pad; b < j*s-pad+k; b++ {
						if a < 0 || a >= h || b < 0 || b >= w {
							continue
						}
						v := x[(p*h+a)*w+b]
						if at < 0 || v > best || math.IsNaN(v) {
							best, at = v, a*w+b
						}
					}
				}
				y[(p*oh+i)*ow+j], arg[(p*oh+i)*ow+j] = best, at
			}
		}
	}
}

// MaxPool2DBackward writes dx, [n·c, h, w], the sum over the windows whose
// maximum each element was of their gradients dy, [n·c, oh, ow].
func MaxPool2DBackward(dx, dy []float64, arg []int, nc, h, w, oh, ow int) {
	clear(dx)
	for p := range nc {
		for o := range oh * ow {
			dx[p*h*w+arg[p*oh*ow+o]] += dy[p*oh*ow+o]
		}
	}
}

// GlobalAvgPool writes y[p] = mean of x's plane p, x [nc, hw].
func GlobalAvgPool(y, x []float64, nc, hw int) {
	Reduce3(y, x, 1, nc, hw, func(v float64) float64 { return v / float64(hw) })
}

// GlobalAvgPoolBackward writes dx[p, l] = dy[p]/hw.
func GlobalAvgPoolBackward(dx, dy []float64, nc, hw int) {
	for p := range nc {
		for l := range hw {
			dx[p*hw+l] = dy[p] / float64(hw)
		}
	}
}
