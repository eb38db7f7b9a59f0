package ref

// InfoNCE is the symmetric cross-view cross-entropy with temperature tau
// of embeddings za, zb [n, d] scaled to unit length:
// ½(mean_i CE(S_i, i) + mean_i CE(Sᵀ_i, i)) with S = Ẑ_A Ẑ_Bᵀ/τ.
func InfoNCE(za, zb []float64, n, d int, tau float64) float64 {
	ha, _ := RowNorm(za, n, d, "l2", 1e-12)
	hb, _ := RowNorm(zb, n, d, "l2", 1e-12)
	s1, s2 := make([]float64, n*n), make([]float64, n*n)
	Gemm(s1, ha, hb, 1, n, n, d, false, true, 1/tau, 0)
	Gemm(s2, hb, ha, 1, n, n, d, false, true, 1/tau, 0)
	labels := make([]float64, n)
	for i := range labels {
		labels[i] = float64(i)
	}
	sum := 0.0
	for _, s := range [][]float64{s1, s2} {
		for _, v := range CrossEntropy(s, labels, n, n) {
			sum += v
		}
	}
	return sum / float64(2*n)
}

// InfoNCEBackward writes the gradients of InfoNCE into dza and dzb.
func InfoNCEBackward(dza, dzb, za, zb []float64, n, d int, tau float64) {
	ha, ia := RowNorm(za, n, d, "l2", 1e-12)
	hb, ib := RowNorm(zb, n, d, "l2", 1e-12)
	s1, s2 := make([]float64, n*n), make([]float64, n*n)
	Gemm(s1, ha, hb, 1, n, n, d, false, true, 1/tau, 0)
	Gemm(s2, hb, ha, 1, n, n, d, false, true, 1/tau, 0)
	labels, w := make([]float64, n), make([]float64, n)
	for i := range labels {
		labels[i], w[i] = float64(i), 1/float64(2*n)
	}
	g1 := CrossEntropyBackward(s1, labels, w, n, n)
	g2 := CrossEntropyBackward(s2, labels, w, n, n)
	dha, dhb := make([]float64, n*d), make([]float64, n*d)
	Gemm(dha, g1, hb, 1, n, d, n, false, false, 1/tau, 0)
	Gemm(dha, g2, hb, 1, n, d, n, true, false, 1/tau, 1)
	Gemm(dhb, g2, ha, 1, n, d, n, false, false, 1/tau, 0)
	Gemm(dhb, g1, ha, 1, n, d, n, true, false, 1/tau, 1)
	copy(dza, RowNormBackward(dha, ha, ia, n, d, "l2"))
	copy(dzb, RowNormBackward(dhb, hb, ib, n, d, "l2"))
}
