package models

import (
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/fixture"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/layers"
)

// load copies the fixture's weights into params and BatchNorm statistics
// (fixture names are prefix + the bt name) and zeroes the gradients.
func load(t *testing.T, f *fixture.Fixture, prefix string, params []*layers.Param, bns []*layers.BatchNorm) {
	t.Helper()
	set := func(x *gpu.Tensor, name string) {
		v, err := f.Get(prefix + name)
		if err != nil {
			t.Fatal(err)
		}
		if err := x.Upload(kcheck.To32(v.Data)); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	for _, p := range params {
		set(p.Value, p.Name)
		if err := p.Grad.Upload(make([]float32, p.Grad.Len())); err != nil {
			t.Fatal(err)
		}
	}
	for _, b := range bns {
		set(b.RunningMean, b.Name()+".running_mean")
		set(b.RunningVar, b.Name()+".running_var")
	}
}

// expectGrads compares every gradient and updated running statistic.
func expectGrads(t *testing.T, f *fixture.Fixture, prefix string, params []*layers.Param, bns []*layers.BatchNorm) {
	t.Helper()
	expectGradsWithin(t, f, prefix, params, bns, replayTol{kcheck.Reduction, kcheck.Reduction, kcheck.Reduction})
}

// replayTol bounds a replay's relative errors: of the output, of the
// parameters' gradients, and of the running statistics.
type replayTol struct{ out, grad, stats float64 }

// expectGradsWithin is expectGrads within tol.
func expectGradsWithin(t *testing.T, f *fixture.Fixture, prefix string, params []*layers.Param, bns []*layers.BatchNorm, tol replayTol) {
	t.Helper()
	for _, p := range params {
		gputest.Expect(t, p.Grad, f, "grad."+prefix+p.Name, tol.grad)
	}
	for _, b := range bns {
		gputest.Expect(t, b.RunningMean, f, "after."+prefix+b.Name()+".running_mean", tol.stats)
		gputest.Expect(t, b.RunningVar, f, "after."+prefix+b.Name()+".running_var", tol.stats)
	}
}

// TestBlocksTorch replays torchvision's BasicBlock (identity and projection
// shortcut) and Bottleneck: output, input gradient, every parameter
// gradient and the running statistics, from tools/fixtures/models.py.
func TestBlocksTorch(t *testing.T) {
	d := gputest.Device(t)
	for _, name := range []string{"block_basic", "block_basic_down", "block_bottleneck"} {
		t.Run(name, func(t *testing.T) {
			f := gputest.Fixture(t, "testdata/"+name+".json")
			meta := map[string]int{}
			for _, k := range []string{"n", "cin", "width", "stride", "h", "w", "bottleneck"} {
				v, err := f.Int(k)
				if err != nil {
					t.Fatal(err)
				}
				meta[k] = v
			}
			n, h, w := meta["n"], meta["h"], meta["w"]
			b, err := newBlock(d, rand.New(rand.NewPCG(1, 1)), newBlockPlan("b", meta["cin"], meta["width"], meta["stride"], meta["bottleneck"] == 1))
			if err != nil {
				t.Fatal(err)
			}
			defer b.release()
			load(t, f, "", b.params(), b.bns())
			x, dy := gputest.Upload(t, d, f, "x"), gputest.Upload(t, d, f, "dy")
			dx := gputest.Zeros(t, d, n, meta["cin"], h, w)
			p := NewPass(d, true)
			defer p.Release()
			var a blockActs
			if err := d.Run(func(r *gpu.Recorder) error {
				if err := b.forward(r, p, &a, x, n, h, w); err != nil {
					return err
				}
				return b.backward(r, p, &a, dx, dy, n, h, w)
			}); err != nil {
				t.Fatal(err)
			}
			gputest.Expect(t, a.out, f, "y", kcheck.Reduction)
			gputest.Expect(t, dx, f, "dx", kcheck.Reduction)
			expectGrads(t, f, "", b.params(), b.bns())
		})
	}
}

// TestTinyProjectorTorch replays the tiny backbone with a 64-32-32-16
// projector: embeddings, every parameter gradient, running statistics.
func TestTinyProjectorTorch(t *testing.T) {
	replayTinyProjector(t, gpu.F32, replayTol{kcheck.Reduction, kcheck.Reduction, kcheck.Reduction})
}

// replayTinyProjector runs TestTinyProjectorTorch's replay with the
// activations stored as act, within tol of PyTorch's float32.
func replayTinyProjector(t *testing.T, act gpu.DType, tol replayTol) {
	d := gputest.Device(t)
	f := gputest.Fixture(t, "testdata/tiny_projector.json.gz")
	const n, h, w = 4, 12, 12
	rng := rand.New(rand.NewPCG(1, 1))
	m, err := NewResNet(d, rng, Config{Arch: "tiny", InChannels: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	pr, err := NewProjector(d, rng, m.Dim, []int{32, 32, 16}, false)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Release()
	load(t, f, "backbone.", m.Params(), m.BatchNorms())
	load(t, f, "", pr.Params(), pr.BatchNorms())
	x, dz := gputest.Upload(t, d, f, "x"), gputest.Upload(t, d, f, "dy")
	repr := gputest.Zeros(t, d, n, m.Dim)
	z := gputest.Zeros(t, d, n, pr.Out)
	dRepr := gputest.Zeros(t, d, n, m.Dim)
	p := NewPassOf(d, true, act)
	defer p.Release()
	if err := d.Run(func(r *gpu.Recorder) error {
		if err := m.Forward(r, p, repr, x, n, h, w); err != nil {
			return err
		}
		if err := pr.Forward(r, p, z, repr, n); err != nil {
			return err
		}
		if err := pr.Backward(r, p, dRepr, dz); err != nil {
			return err
		}
		return m.Backward(r, p, dRepr)
	}); err != nil {
		t.Fatal(err)
	}
	gputest.Expect(t, z, f, "y", tol.out)
	expectGradsWithin(t, f, "backbone.", m.Params(), m.BatchNorms(), tol)
	expectGradsWithin(t, f, "", pr.Params(), pr.BatchNorms(), tol)
	for _, p := range m.Params() {
		if !strings.HasPrefix(p.Name, "conv1") && !strings.HasPrefix(p.Name, "bn1") && !strings.HasPrefix(p.Name, "layer") {
			t.Errorf("backbone parameter %q is not named as torchvision names it", p.Name)
		}
	}
}

// TestTinyProjectorHalf is the replay with every activation and its
// gradient stored as f16 (mixed precision), against PyTorch's float32.
// Measured (2026-12-01): embeddings within 1.5e-3, running statistics
// within 4.4e-4, parameters' gradients within 4.9e-2 relative, growing
// from 0.5% at the last stage to 3–5% towards the input: f16's 2⁻¹¹ per
// stored gradient, compounded through ten layers whose BatchNorm
// backward subtracts nearly equal means over a batch of 4. The bounds are
// twice those; a wrong layer shows as an error near 1.
func TestTinyProjectorHalf(t *testing.T) {
	d := gputest.Device(t)
	gputest.NeedF16(t, d)
	replayTinyProjector(t, gpu.F16, replayTol{out: 3e-3, grad: 0.1, stats: 1e-3})
}

// TestFootprint checks the architecture arithmetic against the networks
// themselves: parameter counts of built models (ResNet-50 has torchvision's
// 23,508,032 without its fc layer) and the memory a training pass really
// keeps, as the device's pool counts it, in f32 and in mixed precision.
func TestFootprint(t *testing.T) {
	f, err := BackboneFootprint(Config{Arch: "resnet50", InChannels: 3}, 1, 224, 224, gpu.F32)
	if err != nil {
		t.Fatal(err)
	}
	if f.Params != 23508032 || f.Dim != 2048 {
		t.Errorf("ResNet-50: %d parameters, dim %d; torchvision has 23508032 and 2048", f.Params, f.Dim)
	}
	d := gputest.Device(t)
	rng := rand.New(rand.NewPCG(1, 2))
	for _, ty := range gputest.Precisions(t, d) {
		for _, cfg := range []Config{{Arch: "tiny", InChannels: 1}, {Arch: "resnet18", InChannels: 3, Stem: ImageNetStem}} {
			const n, h, w = 3, 40, 40
			m, err := NewResNet(d, rng, cfg)
			if err != nil {
				t.Fatal(err)
			}
			f, err := BackboneFootprint(cfg, n, h, w, ty)
			if err != nil {
				t.Fatal(err)
			}
			count := int64(0)
			for _, p := range m.Params() {
				count += int64(p.Value.Len())
			}
			if count != f.Params {
				t.Errorf("%s: footprint says %d parameters, the model has %d", cfg.Arch, f.Params, count)
			}
			x := gputest.Zeros(t, d, n, cfg.InChannels, h, w)
			repr := gputest.Zeros(t, d, n, m.Dim)
			p := NewPassOf(d, true, ty)
			before := d.MemStats().Live
			r, err := d.Record(false)
			if err != nil {
				t.Fatal(err)
			}
			if err := m.Forward(r, p, repr, x, n, h, w); err != nil {
				t.Fatal(err)
			}
			r.Discard() // returns the recording's parameter blocks to the pool
			kept := int64(d.MemStats().Live - before)
			p.Release()
			m.Release()
			// The pool rounds every tensor up to 16 bytes.
			if kept < f.Kept || kept > f.Kept+16*200 {
				t.Errorf("%s, %v activations: a training pass keeps %d bytes, the footprint says %d", cfg.Arch, ty, kept, f.Kept)
			}
		}
	}
}
