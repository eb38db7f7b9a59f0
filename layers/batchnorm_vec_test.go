package layers

import "testing"

// bnVecShapes have HW a multiple of 4, which the training and backward
// kernels read as vec4: one vec4 per channel and sample, planes that are
// not a multiple of the workgroup, and an offset of 1000.
var bnVecShapes = []bnShape{
	{1, 3, 4, true, 0}, {2, 1, 4, false, 0}, {3, 17, 16, true, 0}, {17, 5, 12, false, 0},
	{5, 3, 196, true, 1000}, {3, 2, 1028, true, 0},
}

// TestBatchNormVec runs the training, statistics and backward checks on
// bnVecShapes.
func TestBatchNormVec(t *testing.T) {
	saved := bnShapes
	bnShapes = bnVecShapes
	defer func() { bnShapes = saved }()
	t.Run("train", TestBatchNormTrain)
	t.Run("stats", TestBatchNormStats)
}

// TestBatchNormWorkgroups runs the same checks on all shapes with the
// workgroup layout that GPUs get (on a GPU, the default layout again), with
// its sums in subgroups and in workgroup memory.
func TestBatchNormWorkgroups(t *testing.T) {
	bnLayout = LayoutWorkgroup
	defer func() { bnLayout = LayoutAuto }()
	bnSubgroupModes(t, func(t *testing.T) {
		t.Run("shapes", func(t *testing.T) {
			t.Run("train", TestBatchNormTrain)
			t.Run("stats", TestBatchNormStats)
		})
		t.Run("vec", TestBatchNormVec)
	})
}

// TestBatchNormReLU runs the training, statistics, evaluation and backward
// checks with the ReLU fused, in both layouts, on all shapes.
func TestBatchNormReLU(t *testing.T) {
	bnReLU = true
	defer func() { bnReLU = false }()
	run := func(t *testing.T) {
		t.Run("train", TestBatchNormTrain)
		t.Run("stats", TestBatchNormStats)
		t.Run("eval", TestBatchNormEval)
		t.Run("vec", TestBatchNormVec)
	}
	t.Run("default", run)
	t.Run("workgroups", func(t *testing.T) {
		bnLayout = LayoutWorkgroup
		defer func() { bnLayout = LayoutAuto }()
		bnSubgroupModes(t, run)
	})
}
