package ref

import "math"

// LARS applies one step of the official Barlow Twins LARS to p in place,
// with momentum buffer m and gradient g (all the same length). Unless
// exclude, the weight decay is added to the gradient and the result scaled
// by the trust ratio eta·‖p‖/‖g+wd·p‖, which is 1 where either norm is 0;
// excluded parameters (biases and BatchNorm's γ and β) take the plain
// gradient. Then m = momentum·m + g and p −= lr·m.
func LARS(p, m, g []float64, lr, wd, momentum, eta float64, exclude bool) {
	d := make([]float64, len(g))
	copy(d, g)
	if !exclude {
		var pn, dn float64
		for i := range d {
			d[i] += wd * p[i]
			pn += p[i] * p[i]
			dn += d[i] * d[i]
		}
		pn, dn = math.Sqrt(pn), math.Sqrt(dn)
		q := 1.0
		if pn > 0 && dn > 0 {
			q = eta * pn / dn
		}
		for i := range d {
			d[i] *= q
		}
	}
	for i := range p {
		m[i] = momentum*m[i] + d[i]
		p[i] -= lr * m[i]
	}
}

// SGD applies one step of PyTorch's SGD with momentum (no dampening, no
// Nesterov) to p in place: m = momentum·m + (g + wd·p); p −= lr·m. With a
// zero m this is PyTorch's first step, which starts the buffer at the
// gradient.
func SGD(p, m, g []float64, lr, wd, momentum float64) {
	for i := range p {
		m[i] = momentum*m[i] + g[i] + wd*p[i]
		p[i] -= lr * m[i]
	}
}

// AdamW applies step t (counted from 1) of PyTorch's AdamW to p in place,
// with first and second moments m and v: decoupled decay p −= lr·wd·p,
// then the bias-corrected Adam step.
func AdamW(p, m, v, g []float64, lr, wd, beta1, beta2, eps float64, t int) {
	bc1 := 1 - math.Pow(beta1, float64(t))
	bc2 := 1 - math.Pow(beta2, float64(t))
	for i := range p {
		p[i] *= 1 - lr*wd
		m[i] = beta1*m[i] + (1-beta1)*g[i]
		v[i] = beta2*v[i] + (1-beta2)*g[i]*g[i]
		p[i] -= lr / bc1 * m[i] / (math.Sqrt(v[i])/math.Sqrt(bc2) + eps)
	}
}
