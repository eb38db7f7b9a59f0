package ref

import (
	"math"
	"math/rand/v2"
)

// BTEps is the epsilon of the Barlow Twins loss's batch normalisation, as in
// PyTorch's BatchNorm1d.
const BTEps = 1e-5

// BTTerms are the Barlow Twins loss and its parts for one batch.
type BTTerms struct {
	Loss       float64 // Scale·(OnDiag + λ·OffDiag)
	OnDiag     float64 // Σ_i (1 − C_ii)²
	OffDiag    float64 // Σ_{i≠j} C_ij²
	MeanDiag   float64 // mean of C_ii
	MeanAbsOff float64 // mean of |C_ij| over i ≠ j; 0 when d = 1
}

// btNormalise writes ẑ = (z − μ)/√(σ² + ε) per column of z [n, d], with
// the batch mean and biased variance, and returns 1/√(σ² + ε) per column.
func btNormalise(zh, z []float64, n, d int) []float64 {
	inv := make([]float64, d)
	for j := range d {
		mu := 0.0
		for i := range n {
			mu += z[i*d+j]
		}
		mu /= float64(n)
		v := 0.0
		for i := range n {
			e := z[i*d+j] - mu
			v += e * e
		}
		inv[j] = 1 / math.Sqrt(v/float64(n)+BTEps)
		for i := range n {
			zh[i*d+j] = (z[i*d+j] - mu) * inv[j]
		}
	}
	return inv
}

// BTOptions are the loss's weights and the ablations' switches.
type BTOptions struct {
	OnDiag, Lambda, Scale float64
	NoNorm                bool // C = Z_Aᵀ Z_B / n of the raw embeddings
	FeatureNorm           bool // each embedding standardised over its features instead
}

// btCross returns the normalised embeddings of both views and
// C = Ẑ_Aᵀ Ẑ_B / n [d, d]; with noNorm the embeddings as they are.
func btCross(za, zb []float64, n, d int, noNorm bool) (ha, hb, inva, invb, c []float64) {
	ha, hb = make([]float64, n*d), make([]float64, n*d)
	if noNorm {
		copy(ha, za)
		copy(hb, zb)
	} else {
		inva = btNormalise(ha, za, n, d)
		invb = btNormalise(hb, zb, n, d)
	}
	c = make([]float64, d*d)
	Gemm(c, ha, hb, 1, d, d, n, true, false, 1/float64(n), 0)
	return ha, hb, inva, invb, c
}

// BTLoss computes the Barlow Twins loss of the embeddings of two views,
// za and zb [n, d], as the official code does: each column normalised over
// the batch (BatchNorm1d without affine parameters, training mode),
// C = Ẑ_Aᵀ Ẑ_B / n, L = scale·(Σ_i (1 − C_ii)² + λ Σ_{i≠j} C_ij²).
func BTLoss(za, zb []float64, n, d int, lambda, scale float64) BTTerms {
	return BTLossWith(za, zb, n, d, BTOptions{OnDiag: 1, Lambda: lambda, Scale: scale})
}

// BTLossWith is BTLoss with the invariance term weighed by o.OnDiag (0 for
// the paper's redundancy-only ablation) and, with o.NoNorm, no
// normalisation of the embeddings.
func BTLossWith(za, zb []float64, n, d int, o BTOptions) BTTerms {
	onDiag, lambda, scale := o.OnDiag, o.Lambda, o.Scale
	if o.FeatureNorm {
		za, _ = RowNorm(za, n, d, "std", BTEps)
		zb, _ = RowNorm(zb, n, d, "std", BTEps)
	}
	_, _, _, _, c := btCross(za, zb, n, d, o.NoNorm || o.FeatureNorm)
	var t BTTerms
	var abs float64
	for i := range d {
		for j := range d {
			v := c[i*d+j]
			if i == j {
				t.OnDiag += (1 - v) * (1 - v)
				t.MeanDiag += v
			} else {
				t.OffDiag += v * v
				abs += math.Abs(v)
			}
		}
	}
	t.MeanDiag /= float64(d)
	if d > 1 {
		t.MeanAbsOff = abs / float64(d*(d-1))
	}
	t.Loss = scale * (onDiag*t.OnDiag + lambda*t.OffDiag)
	return t
}

// BTLossBackward writes dL/dza and dL/dzb [n, d] for BTLoss: with
// G = dL/dC (2·scale·(C_ii − 1) on the diagonal, 2·scale·λ·C_ij off it),
// dẐ_A = Ẑ_B Gᵀ / n and dẐ_B = Ẑ_A G / n, then back through each view's
// normalisation: dz = (dẑ − mean(dẑ) − ẑ·mean(dẑ·ẑ)) / √(σ² + ε).
func BTLossBackward(dza, dzb, za, zb []float64, n, d int, lambda, scale float64) {
	BTLossWithBackward(dza, dzb, za, zb, n, d, BTOptions{OnDiag: 1, Lambda: lambda, Scale: scale})
}

// BTLossWithBackward is the gradient of BTLossWith.
func BTLossWithBackward(dza, dzb, za, zb []float64, n, d int, o BTOptions) {
	onDiag, lambda, scale := o.OnDiag, o.Lambda, o.Scale
	var fa, fb, fia, fib []float64
	if o.FeatureNorm {
		fa, fia = RowNorm(za, n, d, "std", BTEps)
		fb, fib = RowNorm(zb, n, d, "std", BTEps)
		za, zb = fa, fb
	}
	ha, hb, inva, invb, c := btCross(za, zb, n, d, o.NoNorm || o.FeatureNorm)
	g := make([]float64, d*d)
	for i := range d {
		for j := range d {
			if i == j {
				g[i*d+j] = 2 * scale * onDiag * (c[i*d+j] - 1)
			} else {
				g[i*d+j] = 2 * scale * lambda * c[i*d+j]
			}
		}
	}
	Gemm(dza, hb, g, 1, n, d, d, false, true, 1/float64(n), 0)
	Gemm(dzb, ha, g, 1, n, d, d, false, false, 1/float64(n), 0)
	if o.FeatureNorm {
		copy(dza, RowNormBackward(dza, fa, fia, n, d, "std"))
		copy(dzb, RowNormBackward(dzb, fb, fib, n, d, "std"))
		return
	}
	if o.NoNorm {
		return
	}
	btNormaliseBackward(dza, ha, inva, n, d)
	btNormaliseBackward(dzb, hb, invb, n, d)
}

// btNormaliseBackward turns dẑ into dz in place, per column.
func btNormaliseBackward(dz, zh, inv []float64, n, d int) {
	for j := range d {
		var m, mz float64
		for i := range n {
			m += dz[i*d+j]
			mz += dz[i*d+j] * zh[i*d+j]
		}
		m /= float64(n)
		mz /= float64(n)
		for i := range n {
			dz[i*d+j] = inv[j] * (dz[i*d+j] - m - zh[i*d+j]*mz)
		}
	}
}

// BTViews draws two views' embeddings [n, d] the way a network gives them:
// columns with their own offsets and spreads, the second view correlated
// with the first. With n = 2 a normalised column is ±1 whatever the input,
// up to ε, so the true gradient is a rounding residue unless the columns
// are small enough for ε to matter; they are drawn so. With n = 3 a
// column's two views often correlate almost perfectly by chance; dL/dz is
// then a difference of nearly equal vectors that float32 rounding alone
// takes beyond a 1e-4 relative error, whatever computes it, so such
// columns are drawn again. So are columns, for any n, whose spread is
// tiny beside their offset: centring them for BatchNorm in float32 loses
// log2(|z|/σ) bits, and a column with σ = |z|/900 took the gradient to a
// 3e-4 relative error on both paths (seed 2176663355189673453, 3×129).
func BTViews(rng *rand.Rand, n, d int) (za, zb []float64) {
	size := 1.0
	if n == 2 {
		size = 0.004
	}
	za, zb = make([]float64, n*d), make([]float64, n*d)
	for j := range d {
		for {
			off, spread := 3*rng.NormFloat64(), 0.2+2*rng.Float64()
			for i := range n {
				a := rng.NormFloat64()*spread + off
				za[i*d+j] = size * a
				zb[i*d+j] = size * (0.8*a + 0.6*rng.NormFloat64()*spread - off/2)
			}
			if wellDrawn(za[j:], zb[j:], n, d) {
				break
			}
		}
	}
	return za, zb
}

// wellDrawn reports whether the column a[i·stride], b[i·stride] is one
// BTViews keeps: each view's sample standard deviation at least 1/64 of
// its largest magnitude and, with n = 3, the views' sample correlation
// under 0.99 in magnitude.
func wellDrawn(a, b []float64, n, stride int) bool {
	x, bigA := centred(a, n, stride)
	y, bigB := centred(b, n, stride)
	var sxy, sxx, syy float64
	for i := range n {
		sxy += x[i] * y[i]
		sxx += x[i] * x[i]
		syy += y[i] * y[i]
	}
	if math.Sqrt(sxx/float64(n))/bigA < 1.0/64 || math.Sqrt(syy/float64(n))/bigB < 1.0/64 {
		return false
	}
	return n != 3 || math.Abs(sxy/math.Sqrt(sxx*syy)) < 0.99
}

// centred returns a[i·stride] less their mean, and their largest magnitude.
func centred(a []float64, n, stride int) (x []float64, big float64) {
	var m float64
	for i := range n {
		m += a[i*stride]
		big = math.Max(big, math.Abs(a[i*stride]))
	}
	m /= float64(n)
	x = make([]float64, n)
	for i := range n {
		x[i] = a[i*stride] - m
	}
	return x, big
}
