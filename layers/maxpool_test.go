package layers_test

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/selfcheck"
	"github.com/bt-org/bt/layers"
)

// TestMaxPool2D checks the pooling and its gradient against float64, in
// f32 and with the activations stored as f16 (mixed precision).
func TestMaxPool2D(t *testing.T) {
	d := gputest.Device(t)
	for _, p := range gputest.Precisions(t, d) {
		half := p == gpu.F16
		for _, s := range layers.PoolShapes {
			t.Run(fmt.Sprintf("half=%v/%v", half, s), func(t *testing.T) {
				n, c, h, w, k, st, pad := s.Sizes()
				gputest.CheckLayer(t, d, selfcheck.MaxPoolLayer(n, c, h, w, k, st, pad, half))
			})
		}
	}
}
