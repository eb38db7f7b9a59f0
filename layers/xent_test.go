package layers_test

import (
	"testing"

	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
	"github.com/bt-org/bt/internal/selfcheck"
)

func TestCrossEntropy(t *testing.T) {
	d := gputest.Device(t)
	for _, s := range [][2]int{{1, 1}, {3, 2}, {17, 10}, {65, 129}, {5, 1000}} {
		for _, c := range selfcheck.CrossEntropyOps(s[0], s[1]) {
			t.Run(c.Name, func(t *testing.T) { gputest.Check(t, d, c.Op) })
		}
	}
	// The float64 backward against finite differences of the forward.
	rng := gputest.Rand(t)
	const n, k = 4, 7
	labels := []float64{0, 6, 3, 3}
	err := ref.GradCheck(rng, [][]float64{kcheck.Normal(rng, n*k)},
		func(in [][]float64) []float64 { return ref.CrossEntropy(in[0], labels, n, k) },
		func(in [][]float64, dout []float64) [][]float64 {
			return [][]float64{ref.CrossEntropyBackward(in[0], labels, dout, n, k)}
		}, 28, 1e-6)
	if err != nil {
		t.Error(err)
	}
}
