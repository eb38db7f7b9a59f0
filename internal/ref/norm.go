package ref

import "math"

// BatchNorm normalises x viewed as [n, c, hw] per channel with the batch's
// mean and biased variance: y = γ·(x−mean)·invstd + β, invstd = 1/√(var+eps).
// It writes mean and invstd ([c] each) for BatchNormBackward. gamma and beta
// ([c]) may be nil for a normalisation without affine parameters.
//
// It works on x − x₀, x₀ the channel's first value, as the kernels do, and
// never forms x − mean: at a mean of 1000 that difference carries the
// mean's rounding, 1e-13, into every output, which finite differences of
// step 1e-6 (GradCheck) magnify past their tolerance.
func BatchNorm(y, mean, invstd, x, gamma, beta []float64, n, c, hw int, eps float64) {
	m := float64(n * hw)
	for j := range c {
		x0 := x[j*hw]
		var delta, variance float64
		each := func(f func(k int)) {
			for i := range n {
				for l := range hw {
					f((i*c+j)*hw + l)
				}
			}
		}
		each(func(k int) { delta += x[k] - x0 })
		delta /= m
		each(func(k int) { d := x[k] - x0 - delta; variance += d * d })
		mean[j], invstd[j] = x0+delta, 1/math.Sqrt(variance/m+eps)
		g, b := 1.0, 0.0
		if gamma != nil {
			g, b = gamma[j], beta[j]
		}
		each(func(k int) { y[k] = g*(x[k]-x0-delta)*invstd[j] + b })
	}
}

// BatchNormEval normalises x viewed as [n, c, hw] with running statistics,
// as BatchNorm does in evaluation mode.
func BatchNormEval(y, x, runMean, runVar, gamma, beta []float64, n, c, hw int, eps float64) {
	invstd := make([]float64, c)
	for j := range c {
		invstd[j] = 1 / math.Sqrt(runVar[j]+eps)
	}
	batchNormApply(y, x, runMean, invstd, gamma, beta, n, c, hw)
}

func batchNormApply(y, x, mean, invstd, gamma, beta []float64, n, c, hw int) {
	for i := range n {
		for j := range c {
			g, b := 1.0, 0.0
			if gamma != nil {
				g, b = gamma[j], beta[j]
			}
			for l := range hw {
				k := (i*c+j)*hw + l
				y[k] = g*(x[k]-mean[j])*invstd[j] + b
			}
		}
	}
}

// BatchNormRunning updates running statistics in place from the batch x,
// viewed as [n, c, hw], the way PyTorch does: running = (1−momentum)·running
// + momentum·batch, where the batch variance is the unbiased one.
func BatchNormRunning(runMean, runVar, x []float64, n, c, hw int, momentum float64) {
	mean, variance := make([]float64, c), make([]float64, c)
	MeanVar(mean, variance, x, n, c, hw)
	m := float64(n * hw)
	for j := range c {
		runMean[j] = (1-momentum)*runMean[j] + momentum*mean[j]
		runVar[j] = (1-momentum)*runVar[j] + momentum*variance[j]*m/(m-1)
	}
}

// BatchNormBackward writes the gradients of a training-mode BatchNorm:
// dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂)), dγ = Σ dy·x̂, dβ = Σ dy, with
// x̂ = (x−mean)·invstd and sums and means over n and hw. gamma nil means no
// affine parameters (γ = 1); dgamma and dbeta are then not written.
func BatchNormBackward(dx, dgamma, dbeta, dy, x, mean, invstd, gamma []float64, n, c, hw int) {
	m := float64(n * hw)
	for j := range c {
		var sdy, sdyx float64
		for i := range n {
			for l := range hw {
				k := (i*c+j)*hw + l
				sdy += dy[k]
				sdyx += dy[k] * (x[k] - mean[j]) * invstd[j]
			}
		}
		g := 1.0
		if gamma != nil {
			g = gamma[j]
			dgamma[j], dbeta[j] = sdyx, sdy
		}
		for i := range n {
			for l := range hw {
				k := (i*c+j)*hw + l
				xh := (x[k] - mean[j]) * invstd[j]
				dx[k] = g * invstd[j] * (dy[k] - sdy/m - xh*sdyx/m)
			}
		}
	}
}
