package layers

import (
	"fmt"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/shaders"
)

// xentWG is the workgroup size of the cross-entropy kernel: one workgroup
// per row, its threads striding over the classes.
const xentWG = 64

func xent(r *gpu.Recorder, out, logits, labels *gpu.Tensor, n, k int, scale float32, backward bool) error {
	want := n
	if backward {
		want = n * k
	}
	if n < 1 || k < 1 || logits.Len() != n*k || labels.Len() != n || out.Len() != want {
		return fmt.Errorf("layers: cross-entropy of %d×%d logits: logits %v, labels %v and output %v do not fit", n, k, logits.Shape, labels.Shape, out.Shape)
	}
	kern, err := r.Device().Kernel("xent", shaders.Xent{Backward: backward, Threads: shaders.Threads{WG: xentWG}})
	if err != nil {
		return err
	}
	grid, err := spreadGrid(r.Device(), n)
	if err != nil {
		return err
	}
	return r.Dispatch(kern, grid, gpu.Params{}.U(n).U(k).F(scale), out, logits, labels)
}

// CrossEntropyForward writes each row's softmax cross-entropy loss.
// loss [n], logits [n, k], labels [n] (class indices as floats, exact
// below 2²⁴).
func CrossEntropyForward(r *gpu.Recorder, loss, logits, labels *gpu.Tensor, n, k int) error {
	return xent(r, loss, logits, labels, n, k, 1, false)
}

// CrossEntropyBackward writes the gradient of the mean loss over the n rows,
// (softmax(logits) − onehot(labels))/n.
// dLogits [n, k], logits [n, k], labels [n].
func CrossEntropyBackward(r *gpu.Recorder, dLogits, logits, labels *gpu.Tensor, n, k int) error {
	return xent(r, dLogits, logits, labels, n, k, 1/float32(n), true)
}
