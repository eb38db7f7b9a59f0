package train

import "math"

// Embeddings downloads the two views' embeddings of the latest step
// ([n, D] each), waiting for it.
func (t *Trainer) Embeddings() (za, zb []float32, err error) {
	if za, err = t.za.Download(); err != nil {
		return nil, nil, err
	}
	zb, err = t.zb.Download()
	return za, zb, err
}

// CrossCorrelation computes, in float64 on the host, the top-left dims×dims
// block of C = Ẑ_Aᵀ Ẑ_B / N for embeddings za, zb [n, d], each dimension
// normalised over the batch as the loss does. It is for pictures and
// diagnostics; the loss never forms C this way.
func CrossCorrelation(za, zb []float32, n, d, dims int) []float64 {
	dims = min(dims, d)
	norm := func(z []float32) [][]float64 {
		cols := make([][]float64, dims)
		for j := range dims {
			col := make([]float64, n)
			mean := 0.0
			for i := range n {
				col[i] = float64(z[i*d+j])
				mean += col[i]
			}
			mean /= float64(n)
			v := 0.0
			for i := range col {
				col[i] -= mean
				v += col[i] * col[i]
			}
			inv := 1 / math.Sqrt(v/float64(n)+1e-5)
			for i := range col {
				col[i] *= inv
			}
			cols[j] = col
		}
		return cols
	}
	a, b := norm(za), norm(zb)
	c := make([]float64, dims*dims)
	for i := range dims {
		for j := range dims {
			s := 0.0
			for k := range n {
				s += a[i][k] * b[j][k]
			}
			c[i*dims+j] = s / float64(n)
		}
	}
	return c
}
