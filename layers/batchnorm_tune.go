package layers

import (
	"fmt"
	"time"

	"github.com/bt-org/bt/gpu"
)

// TimeBatchNorm times the pass of case c (gpu.FamilyBatchNorm: the
// training forward, gpu.FamilyBatchNormBackward: the backward, after one
// untimed forward) at its sizes with variant v, reps times in one
// submission (gpu.Device.TimeVariant), on zeros: its time does not depend
// on the values.
func TimeBatchNorm(d *gpu.Device, c gpu.KernelCase, v gpu.KernelVariant, reps int) (time.Duration, error) {
	fam := c.Class.Family
	if fam != gpu.FamilyBatchNorm && fam != gpu.FamilyBatchNormBackward {
		return 0, fmt.Errorf("layers: no BatchNorm pass of family %q", fam)
	}
	n, ch, hw := c.Dims[0], c.Dims[1], c.Dims[2]
	b, err := NewBatchNorm(d, "tune", ch, c.Affine)
	if err != nil {
		return 0, err
	}
	defer b.Release()
	b.ReLU = c.ReLU
	var ts []*gpu.Tensor
	defer func() {
		for _, t := range ts {
			t.Release()
		}
	}()
	for _, shape := range [][]int{{n, ch, hw}, {n, ch, hw}, {n, ch, hw}, {n, ch, hw}, {3, ch}} {
		t, err := d.NewTensor(shape...)
		if err != nil {
			return 0, err
		}
		ts = append(ts, t)
		if err := d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, t, 0) }); err != nil {
			return 0, err
		}
	}
	x, y, dy, dx, cache := ts[0], ts[1], ts[2], ts[3], ts[4]
	forward := func(r *gpu.Recorder) error { return b.Forward(r, y, cache, x, n, hw, true) }
	if fam == gpu.FamilyBatchNorm {
		return d.TimeVariant(c, v, reps, forward)
	}
	if err := d.Run(forward); err != nil {
		return 0, err
	}
	return d.TimeVariant(c, v, reps, func(r *gpu.Recorder) error { return b.Backward(r, dx, dy, x, cache, n, hw) })
}
