package ref

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestCompare shows that the harness catches each kind of failure it claims
// to: an element left unwritten, a wrong value, a value that overflowed.
func TestCompare(t *testing.T) {
	want := []float64{1, -2, 3, 4}
	cases := []struct {
		name string
		got  []float64
		tol  float64
		err  string
	}{
		{"equal", []float64{1, -2, 3, 4}, 1e-12, ""},
		{"within tolerance", []float64{1, -2, 3, 4.0001}, 1e-4, ""},
		{"unwritten", []float64{1, math.NaN(), 3, 4}, 1, "unwritten"},
		{"overflow", []float64{1, -2, math.Inf(1), 4}, 1, "overflowed"},
		{"wrong value", []float64{1, -2, 3, 5}, 1e-4, "relative error"},
		{"short", []float64{1, -2, 3}, 1, "got 3 values"},
	}
	for _, tc := range cases {
		err := Compare(tc.got, want, tc.tol)
		if (err == nil) != (tc.err == "") || (err != nil && !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("%s: got %v, want error containing %q", tc.name, err, tc.err)
		}
	}
	if err := Compare([]float64{0, 1e-6}, []float64{0, 0}, 1e-5); err != nil {
		t.Errorf("all-zero reference uses absolute error: %v", err)
	}
}

// TestGradCheck shows the checker accepts a right gradient and rejects a
// wrong one.
func TestGradCheck(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	fwd := func(ins [][]float64) []float64 {
		out := make([]float64, len(ins[0]))
		for i, x := range ins[0] {
			out[i] = x * x * ins[1][i]
		}
		return out
	}
	bwd := func(ins [][]float64, dout []float64) [][]float64 {
		dx, dy := make([]float64, len(dout)), make([]float64, len(dout))
		for i := range dout {
			dx[i] = 2 * ins[0][i] * ins[1][i] * dout[i]
			dy[i] = ins[0][i] * ins[0][i] * dout[i]
		}
		return [][]float64{dx, dy}
	}
	ins := [][]float64{{1, -2, 3}, {0.5, 4, -1}}
	if err := GradCheck(rng, ins, fwd, bwd, 10, 1e-6); err != nil {
		t.Fatal(err)
	}
	wrong := func(ins [][]float64, dout []float64) [][]float64 {
		g := bwd(ins, dout)
		g[1][2] *= 1.01
		return g
	}
	if err := GradCheck(rng, ins, fwd, wrong, 10, 1e-6); err == nil {
		t.Fatal("a wrong gradient passed")
	}

	// relu(γ·x) at γ = 5e-7: a step of 1e-6 in γ carries every output
	// across the kink at 0, so that step's difference is not the
	// derivative.
	reluFwd := func(ins [][]float64) []float64 {
		out := make([]float64, len(ins[0]))
		for i, x := range ins[0] {
			out[i] = max(0, ins[1][0]*x)
		}
		return out
	}
	reluBwd := func(ins [][]float64, dout []float64) [][]float64 {
		dg := 0.0
		for i, x := range ins[0] {
			if ins[1][0]*x > 0 {
				dg += x * dout[i]
			}
		}
		return [][]float64{nil, {dg}}
	}
	kink := [][]float64{{2, 1, -1}, {5e-7}}
	if err := GradCheck(rng, kink, reluFwd, reluBwd, 10, 1e-6); err != nil {
		t.Fatalf("a gradient at 5e-7 from a kink: %v", err)
	}
	wrongRelu := func(ins [][]float64, dout []float64) [][]float64 {
		g := reluBwd(ins, dout)
		g[1][0] *= 1.01
		return g
	}
	if err := GradCheck(rng, kink, reluFwd, wrongRelu, 10, 1e-6); err == nil {
		t.Fatal("a wrong gradient near a kink passed")
	}
}
