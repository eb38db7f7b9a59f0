package layers

import (
	"fmt"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/shaders"
)

// RowNorm normalises each row of a matrix over its features: "l2" to unit
// length (the cosine similarity of InfoNCE-style losses) or "std" to mean 0
// and variance 1 (the Barlow Twins ablation that normalises along the
// feature dimension instead of the batch).
type RowNorm struct {
	Mode string
	Eps  float32
}

const rowNormWG = 64

func (m RowNorm) kernel(r *gpu.Recorder, backward bool, n, d int, ts ...*gpu.Tensor) error {
	if m.Mode != "l2" && m.Mode != "std" {
		return fmt.Errorf("layers: RowNorm mode %q: want l2 or std", m.Mode)
	}
	for i, t := range ts {
		want := n * d
		if (!backward && i == 1) || (backward && i == 3) {
			want = n // inv
		}
		if n < 1 || d < 1 || t == nil || t.Len() != want {
			return fmt.Errorf("layers: RowNorm of [%d, %d]: operand %d must have %d elements", n, d, i, want)
		}
	}
	k, err := r.Device().Kernel("rownorm", shaders.RowNorm{Mode: shaders.RowNormMode(m.Mode), Backward: backward,
		Subgroups: r.Device().Subgroups, Threads: shaders.Threads{WG: rowNormWG}})
	if err != nil {
		return err
	}
	grid, err := spreadGrid(r.Device(), n)
	if err != nil {
		return err
	}
	return r.Dispatch(k, grid, gpu.Params{}.U(n).U(d).F(m.Eps), ts...)
}

// Forward writes y, x with each row normalised, and inv, the scale each
// row was multiplied by, for Backward.
// y [n, d], inv [n], x [n, d].
func (m RowNorm) Forward(r *gpu.Recorder, y, inv, x *gpu.Tensor, n, d int) error {
	return m.kernel(r, false, n, d, y, inv, x)
}

// Backward writes dx given dy and the forward pass's y and inv.
// dx [n, d], dy [n, d], y [n, d], inv [n].
func (m RowNorm) Backward(r *gpu.Recorder, dx, dy, y, inv *gpu.Tensor, n, d int) error {
	return m.kernel(r, true, n, d, dx, dy, y, inv)
}
