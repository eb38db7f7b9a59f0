package gpu

import "testing"

func TestWiden(t *testing.T) {
	for _, tc := range []struct {
		expr   string
		halves []string
		want   string
	}{
		{"a[i] + b[i]", nil, "a[i] + b[i]"},
		{"a[i] + b[i]", []string{"b"}, "a[i] + f32(b[i])"},
		{"y[i] + p.alpha * x[i]", []string{"y", "x"}, "f32(y[i]) + p.alpha * f32(x[i])"},
		{"bias[(i / p.stride) % p.period]", []string{"bias"}, "f32(bias[(i / p.stride) % p.period])"},
		{"w[x[i] + 1u]", []string{"w", "x"}, "f32(w[f32(x[i]) + 1u])"},
		{"select(0.0, dy[i], xx[i] > 0.0)", []string{"x", "dy"}, "select(0.0, f32(dy[i]), xx[i] > 0.0)"},
		{"p.x[i]", []string{"x"}, "p.x[i]"},
	} {
		if got := widen(tc.expr, tc.halves); got != tc.want {
			t.Errorf("widen(%q, %v) = %q, want %q", tc.expr, tc.halves, got, tc.want)
		}
	}
}
