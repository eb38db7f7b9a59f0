package ref

import "math"

// CrossEntropy returns each row's softmax cross-entropy of logits [n, k]
// against labels [n] (class indices).
func CrossEntropy(logits, labels []float64, n, k int) []float64 {
	out := make([]float64, n)
	for i := range n {
		row := logits[i*k : (i+1)*k]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - m)
		}
		out[i] = math.Log(s) + m - row[int(labels[i])]
	}
	return out
}

// CrossEntropyBackward returns the gradient of Σ dLoss[i]·loss[i] with
// respect to the logits.
func CrossEntropyBackward(logits, labels, dLoss []float64, n, k int) []float64 {
	g := make([]float64, n*k)
	for i := range n {
		row := logits[i*k : (i+1)*k]
		m := math.Inf(-1)
		for _, v := range row {
			m = math.Max(m, v)
		}
		s := 0.0
		for _, v := range row {
			s += math.Exp(v - m)
		}
		for j, v := range row {
			p := math.Exp(v-m) / s
			if j == int(labels[i]) {
				p--
			}
			g[i*k+j] = dLoss[i] * p
		}
	}
	return g
}
