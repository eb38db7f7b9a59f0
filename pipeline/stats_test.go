package pipeline_test

import (
	"testing"

	"github.com/bt-org/bt/internal/augstats"
)

// TestAugmentStatistics reads the rates of every random augmentation from
// the CPU path's outputs and checks them, the crops and the draws against
// the presets' distributions; package augment runs the same table on the
// device path.
func TestAugmentStatistics(t *testing.T) {
	augstats.Check(t, augstats.CPU)
}
