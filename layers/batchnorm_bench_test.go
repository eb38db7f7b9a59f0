package layers

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
)

// bnBenchShapes are the BatchNorms of the tiny ResNet at batch 256 on 28×28
// images (stem and three stages: [N, C, HW]) and of its projector
// (BatchNorm1d, HW = 1).
var bnBenchShapes = [][3]int{{256, 16, 784}, {256, 32, 196}, {256, 64, 49}, {256, 512, 1}}

// BenchmarkBatchNorm times a training forward and backward with the ReLU
// fused, in the serial layout (CPU adapters' default, when it applies) and
// in the workgroup layout with its sums in subgroups and in workgroup
// memory, all in one run.
func BenchmarkBatchNorm(b *testing.B) {
	for _, s := range bnBenchShapes {
		n, c, hw := s[0], s[1], s[2]
		b.Run(fmt.Sprintf("%dx%dx%d", n, c, hw), func(b *testing.B) {
			b.Run("serial", func(b *testing.B) {
				d := gputest.Device(b)
				bn := newBenchBN(b, d, n, c, hw)
				if !bn.b.serial(n, hw) {
					b.Skipf("%s takes the workgroup layout at this shape", d.Info.Name)
				}
				bn.run(b)
			})
			b.Run("workgroup", func(b *testing.B) {
				bnLayout = LayoutWorkgroup
				defer func() { bnLayout = LayoutAuto }()
				gputest.SubgroupModes(b, func(b *testing.B, d *gpu.Device) {
					newBenchBN(b, d, n, c, hw).run(b)
				})
			})
		})
	}
}

// benchBN is a BatchNorm with ReLU fused and the tensors of one step.
type benchBN struct {
	b                   *BatchNorm
	d                   *gpu.Device
	n, hw               int
	x, y, cache, dy, dx *gpu.Tensor
}

func newBenchBN(b *testing.B, d *gpu.Device, n, c, hw int) *benchBN {
	bn, err := NewBatchNorm(d, "bench", c, true, WithLayout(bnLayout))
	if err != nil {
		b.Fatal(err)
	}
	bn.ReLU = true
	b.Cleanup(bn.Release)
	t := &benchBN{b: bn, d: d, n: n, hw: hw}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, p := range []**gpu.Tensor{&t.x, &t.y, &t.dy, &t.dx} {
		if *p, err = d.FromSlice(kcheck.To32(kcheck.Normal(rng, n*c*hw)), n, c, hw); err != nil {
			b.Fatal(err)
		}
		b.Cleanup((*p).Release)
	}
	if t.cache, err = bn.NewCache(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(t.cache.Release)
	return t
}

// run times one forward and backward per iteration, submitted and waited for.
func (t *benchBN) run(b *testing.B) {
	step := func() {
		if err := t.d.Run(func(r *gpu.Recorder) error {
			if err := t.b.Forward(r, t.y, t.cache, t.x, t.n, t.hw, true); err != nil {
				return err
			}
			return t.b.Backward(r, t.dx, t.dy, t.x, t.cache, t.n, t.hw)
		}); err != nil {
			b.Fatal(err)
		}
		t.d.Sync()
	}
	step() // compiles the kernels
	for b.Loop() {
		step()
	}
}
