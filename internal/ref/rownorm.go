package ref

import "math"

// RowNorm normalises each row of x [n, d]: mode "l2" to unit length
// (lengths floored at eps), "std" to mean 0 and variance 1 (var + eps).
// It returns the normalised rows and each row's scale.
func RowNorm(x []float64, n, d int, mode string, eps float64) (y, inv []float64) {
	y, inv = make([]float64, n*d), make([]float64, n)
	for i := range n {
		row := x[i*d : (i+1)*d]
		mean, s := 0.0, 0.0
		if mode == "std" {
			for _, v := range row {
				mean += v
			}
			mean /= float64(d)
			for _, v := range row {
				s += (v - mean) * (v - mean)
			}
			inv[i] = 1 / math.Sqrt(s/float64(d)+eps)
		} else {
			for _, v := range row {
				s += v * v
			}
			inv[i] = 1 / math.Max(math.Sqrt(s), eps)
		}
		for j, v := range row {
			y[i*d+j] = (v - mean) * inv[i]
		}
	}
	return y, inv
}

// RowNormBackward returns dx for RowNorm given dy.
func RowNormBackward(dy, y, inv []float64, n, d int, mode string) []float64 {
	dx := make([]float64, n*d)
	for i := range n {
		var sdy, sdyy float64
		for j := range d {
			sdy += dy[i*d+j]
			sdyy += dy[i*d+j] * y[i*d+j]
		}
		for j := range d {
			if mode == "std" {
				dx[i*d+j] = inv[i] * (dy[i*d+j] - sdy/float64(d) - y[i*d+j]*sdyy/float64(d))
			} else {
				dx[i*d+j] = inv[i] * (dy[i*d+j] - y[i*d+j]*sdyy)
			}
		}
	}
	return dx
}
