package layers_test

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/selfcheck"
)

// TestRowNorm checks both reduction paths (subgroups and workgroup memory)
// on rows shorter and longer than a workgroup.
func TestRowNorm(t *testing.T) {
	gputest.SubgroupModes(t, func(t *testing.T, d *gpu.Device) {
		// Rows of 2 are left out for "std": standardised, they are always ±1
		// and their gradient is zero up to eps, which no relative error can
		// measure.
		for _, mode := range []string{"l2", "std"} {
			for _, s := range [][2]int{{1, 3}, {3, 17}, {17, 65}, {5, 129}, {65, 3}, {3, 1000}} {
				n, dim := s[0], s[1]
				t.Run(fmt.Sprintf("%s/%dx%d", mode, n, dim), func(t *testing.T) {
					gputest.CheckLayer(t, d, selfcheck.RowNormLayer(mode, n, dim))
				})
			}
		}
	})
}
