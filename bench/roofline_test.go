package bench

import (
	"strings"
	"testing"
)

// TestRoof places kernels of known rate and traffic against known
// ceilings: the fractions of each ceiling and the bound that the
// arithmetic intensity gives.
func TestRoof(t *testing.T) {
	c := Ceilings{GFLOPS: 100, GBps: 10} // the ridge: 10 FLOP per byte
	for _, tc := range []struct {
		flops, bytes, seconds float64
		want                  []string
	}{
		{50e9, 1e9, 1, []string{"50.0 GFLOP/s ( 50.0% of FMA)", "1.0 GB/s ( 10.0% of bandwidth)", "50.0 FLOP/B: compute-bound"}},
		{2e9, 8e9, 1, []string{"2.0 GFLOP/s (  2.0% of FMA)", "8.0 GB/s ( 80.0% of bandwidth)", "0.2 FLOP/B: memory-bound"}},
		{10e9, 2e9, 0.5, []string{"20.0 GFLOP/s ( 20.0% of FMA)", "4.0 GB/s ( 40.0% of bandwidth)", "5.0 FLOP/B: memory-bound"}},
	} {
		got := c.Roof(tc.flops, tc.bytes, tc.seconds)
		for _, w := range tc.want {
			if !strings.Contains(got, w) {
				t.Errorf("Roof(%g, %g, %g) = %q, lacks %q", tc.flops, tc.bytes, tc.seconds, got, w)
			}
		}
	}
}

// TestConvCaseCounts checks a pass's FLOP and byte counts on a layer
// small enough to count by hand: 2×3×4×4 input, 5 filters of 3×3, pad 1.
func TestConvCaseCounts(t *testing.T) {
	c := ConvCase{Shape: ConvCases[0].Shape}
	c.Shape.N, c.Shape.Cin, c.Shape.H, c.Shape.W, c.Shape.Cout = 2, 3, 4, 4, 5
	c.Shape.KH, c.Shape.KW, c.Shape.Stride, c.Shape.Pad = 3, 3, 1, 1
	if f := c.Flops(); f != 2*2*5*16*27 {
		t.Errorf("Flops = %g, want %d", f, 2*2*5*16*27)
	}
	if b := c.Bytes(); b != 4*(2*3*16+5*27+2*5*16) {
		t.Errorf("Bytes = %g, want %d", b, 4*(2*3*16+5*27+2*5*16))
	}
}
