package layers_test

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/selfcheck"
)

// TestGlobalAvgPool checks the global average pool's forward and backward
// in every precision the adapter has, on sizes down to one value.
func TestGlobalAvgPool(t *testing.T) {
	d := gputest.Device(t)
	for _, p := range gputest.Precisions(t, d) {
		half := p == gpu.F16
		for _, s := range [][3]int{{1, 1, 1}, {3, 17, 49}, {2, 3, 9}, {65, 3, 1}, {5, 129, 16}, {1, 2, 1000}} {
			n, c, hw := s[0], s[1], s[2]
			t.Run(fmt.Sprintf("half=%v/%dx%dx%d", half, n, c, hw), func(t *testing.T) {
				gputest.CheckLayer(t, d, selfcheck.GlobalAvgPoolLayer(n, c, hw, half))
			})
		}
	}
}
