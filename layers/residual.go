package layers

import "github.com/bt-org/bt/gpu"

// ResidualAdd writes out = branch + shortcut, all of one shape: the join of
// a residual block's two paths, before the block's last ReLU.
//
// Its backward needs no kernel: a sum hands its gradient unchanged to both
// terms, so the branch's and the shortcut's backward passes both take the
// gradient of out itself. The two paths meet again at the block's input,
// which both read; since activation gradients are written, not accumulated,
// each path writes its own input gradient and ResidualJoin adds them. A
// basic block out = ReLU(BN₂(conv₂(ReLU(BN₁(conv₁(x))))) + x) runs backward
// as
//
//	gpu.ReLUBackward(r, dSum, dOut, out)
//	bn2.Backward(r, dH, dSum, h, cache2, n, hw) // … down the branch to
//	conv1.Backward(r, dXBranch, dH1, x, n, h, w)
//	ResidualJoin(r, dX, dXBranch, dSum) // identity shortcut: its gradient is dSum
//
// and with a projection shortcut (conv and BN), dSum goes down that path
// too and ResidualJoin adds its result instead of dSum.
func ResidualAdd(r *gpu.Recorder, out, branch, shortcut *gpu.Tensor) error {
	return gpu.Add(r, out, branch, shortcut)
}

// ResidualJoin writes dIn = dBranch + dShortcut, the gradient of a block's
// input from the gradients its two paths give back, all of one shape. Where
// memory is short, gpu.Axpy(r, dBranch, dShortcut, 1) adds in place instead.
func ResidualJoin(r *gpu.Recorder, dIn, dBranch, dShortcut *gpu.Tensor) error {
	return gpu.Add(r, dIn, dBranch, dShortcut)
}
