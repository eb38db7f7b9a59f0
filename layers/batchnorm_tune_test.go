package layers

import (
	"fmt"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/shaders"
)

// TestBatchNormVariants checks every layout tuning may choose for a
// BatchNorm's training forward and backward (BatchNormVariants: the serial
// layout, and workgroups of 64 to 256 threads over 1 to 64 channels) on
// every shape of bnShapes and bnVecShapes, plain and with the ReLU fused,
// against float64.
func TestBatchNormVariants(t *testing.T) {
	d := gputest.Device(t)
	defer d.SetTuning(gpu.Tuning{})
	for _, relu := range []bool{false, true} {
		for _, s := range append(append([]bnShape{}, bnShapes...), bnVecShapes...) {
			b := &BatchNorm{C: s.c, d: d, ReLU: relu}
			if s.affine {
				// Only Affine() is read: any non-nil γ will do.
				b.Gamma = &Param{}
			}
			train, back := b.kernelCase(shaders.BNTrain, s.n, s.hw), b.kernelCase(shaders.BNBackward, s.n, s.hw)
			vs := BatchNormVariants(d, train)
			if len(vs) < 4 {
				t.Fatalf("%v: %d variants: %v", s, len(vs), vs)
			}
			for _, v := range vs {
				t.Run(fmt.Sprintf("relu=%v/%v/%v", relu, s, v), func(t *testing.T) {
					if err := d.SetTuning(gpu.Tuning{Kernels: map[gpu.KernelClass]gpu.KernelVariant{train.Class: v, back.Class: v}}); err != nil {
						t.Fatal(err)
					}
					bnReLU = relu
					defer func() { bnReLU = false }()
					if got := (&BatchNorm{C: s.c, d: d}).variant(shaders.BNTrain, s.n, s.hw); got != v {
						t.Fatalf("the layer takes %v, want the tuned %v", got, v)
					}
					checkBNTrain(t, d, s)
				})
			}
		}
	}
}
