package ref

// LinearForward returns in·Wᵀ + b for in [n, din], w [dout, din], b [dout]
// (b may be nil).
func LinearForward(in, w, b []float64, n, din, dout int) []float64 {
	out := make([]float64, n*dout)
	Gemm(out, in, w, 1, n, dout, din, false, true, 1, 0)
	if b != nil {
		for i := range out {
			out[i] += b[i%dout]
		}
	}
	return out
}

// LinearBackward returns the gradients of in, w and b (nil when b is nil).
func LinearBackward(in, w, b, dy []float64, n, din, dout int) (dx, dw, db []float64) {
	dx, dw = make([]float64, n*din), make([]float64, dout*din)
	Gemm(dx, dy, w, 1, n, din, dout, false, false, 1, 0)
	Gemm(dw, dy, in, 1, dout, din, n, true, false, 1, 0)
	if b != nil {
		db = make([]float64, dout)
		for i, g := range dy {
			db[i%dout] += g
		}
	}
	return dx, dw, db
}
