package gpu

import (
	"math"
	"strings"
	"testing"
)

func TestProbeCompare(t *testing.T) {
	nan := float32(math.NaN())
	for _, tc := range []struct {
		got  float32
		want float64
		ok   bool
	}{
		{1, 1, true},
		{1 + 5e-5, 1, true},
		{1 + 2e-4, 1, false},
		{1e-5, 0, true}, // near zero, error measured against 1
		{2e-4, 0, false},
		{-3000.1, -3000, true},
		{-3001, -3000, false},
		{nan, 1, false}, // an output the kernel never wrote
		{float32(math.Inf(1)), 1, false},
	} {
		err := probeCompare("x", tc.got, tc.want)
		if (err == nil) != tc.ok {
			t.Errorf("probeCompare(%g, %g) = %v, want ok %v", tc.got, tc.want, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "quick check: x") {
			t.Errorf("probeCompare's error %q does not name the check", err)
		}
	}
}

func TestRanked(t *testing.T) {
	for _, tc := range []struct {
		ranks []int
		want  []int
	}{
		{[]int{3}, []int{0}},
		{[]int{3, 1}, []int{1, 0}}, // Wine: llvmpipe (CPU), then vkd3d (integrated)
		{[]int{2, 0, 3, 0}, []int{1, 3, 0, 2}},
	} {
		infos := make([]AdapterInfo, len(tc.ranks))
		for i, r := range tc.ranks {
			infos[i] = AdapterInfo{Index: i, rank: r}
		}
		got := ranked(infos)
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ranked(%v) = %v, want %v", tc.ranks, got, tc.want)
				break
			}
		}
	}
}
