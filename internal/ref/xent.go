package ref

import "math"

// softmax returns the softmax of a row and the log of its normaliser
// (log Σ exp), computed after subtracting the row's maximum.
func softmax(row []float64) (p []float64, logZ float64) {
	m := math.Inf(-1)
	for _, v := range row {
		m = math.Max(m, v)
	}
	s := 0.0
	p = make([]float64, len(row))
	for j, v := range row {
		p[j] = math.Exp(v - m)
		s += p[j]
	}
	for j := range p {
		p[j] /= s
	}
	return p, math.Log(s) + m
}

// CrossEntropy returns each row's softmax cross-entropy of logits [n, k]
// against labels [n] (class indices).
func CrossEntropy(logits, labels []float64, n, k int) []float64 {
	out := make([]float64, n)
	for i := range n {
		row := logits[i*k : (i+1)*k]
		_, logZ := softmax(row)
		out[i] = logZ - row[int(labels[i])]
	}
	return out
}

// CrossEntropyBackward returns the gradient of Σ dLoss[i]·loss[i] with
// respect to the logits: dLoss[i]·(softmax − onehot) per row.
func CrossEntropyBackward(logits, labels, dLoss []float64, n, k int) []float64 {
	g := make([]float64, n*k)
	for i := range n {
		p, _ := softmax(logits[i*k : (i+1)*k])
		p[int(labels[i])]--
		for j, v := range p {
			g[i*k+j] = dLoss[i] * v
		}
	}
	return g
}
