package loss

import (
	"fmt"
	"math"
	"time"

	"github.com/bt-org/bt/gpu"
)

// TimeVariant times the loss's dispatches of case c's family at its sizes
// with variant v, reps times in one submission (gpu.Device.TimeVariant):
// btloss_norm and btloss_back for gpu.FamilyLossColumns, btloss_sum for
// gpu.FamilyLossSum, on zeros, since their time does not depend on the
// values.
func TimeVariant(d *gpu.Device, c gpu.KernelCase, v gpu.KernelVariant, reps int) (time.Duration, error) {
	o := DefaultOptions()
	if !c.Norm {
		o.Norm = NoNorm
	}
	var n, dim int
	var fused bool
	switch c.Class.Family {
	case gpu.FamilyLossColumns:
		n, dim, fused = c.Dims[0], c.Dims[1], c.Dims[1] > c.Dims[0]
	case gpu.FamilyLossSum:
		// The sum runs over C [dim, dim], or with Dot over the Gram
		// matrices [n, n].
		side := int(math.Round(math.Sqrt(float64(c.Dims[0]))))
		if side*side != c.Dims[0] {
			return 0, fmt.Errorf("loss: a sum over %d values is not one over a square matrix", c.Dims[0])
		}
		n, dim, fused = 1, side, c.Dot
		if fused {
			n, dim = side, 1
		}
	default:
		return 0, fmt.Errorf("loss: no kernel of family %q", c.Class.Family)
	}
	l, err := newBarlowTwins(d, n, dim, o, fused)
	if err != nil {
		return 0, err
	}
	defer l.Release()
	var ts []*gpu.Tensor
	defer func() {
		for _, t := range ts {
			t.Release()
		}
	}()
	for range 4 {
		t, err := d.NewTensor(n, dim)
		if err != nil {
			return 0, err
		}
		ts = append(ts, t)
		if err := d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, t, 0) }); err != nil {
			return 0, err
		}
	}
	for _, t := range []*gpu.Tensor{l.c, l.ka, l.kb} {
		if t != nil {
			if err := d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, t, 0) }); err != nil {
				return 0, err
			}
		}
	}
	return d.TimeVariant(c, v, reps, func(r *gpu.Recorder) error {
		if c.Class.Family == gpu.FamilyLossSum {
			sum := []*gpu.Tensor{l.part, l.c}
			if fused {
				sum = []*gpu.Tensor{l.part, l.ka, l.kb}
			}
			_, err := l.sum(r, sum...)
			return err
		}
		if err := l.norm(r, ts[0], ts[1]); err != nil {
			return err
		}
		return l.back(r, ts[2], ts[3])
	})
}
