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
	for _, p := range params {
		gputest.Expect(t, p.Grad, f, "grad."+prefix+p.Name, kcheck.Reduction)
	}
	for _, b := range bns {
		gputest.Expect(t, b.RunningMean, f, "after."+prefix+b.Name()+".running_mean", kcheck.Reduction)
		gputest.Expect(t, b.RunningVar, f, "after."+prefix+b.Name()+".running_var", kcheck.Reduction)
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
			b, err := newBlock(d, rand.New(rand.NewPCG(1, 1)), "b", meta["cin"], meta["width"], meta["stride"], meta["bottleneck"] == 1)
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
	d := gputest.Device(t)
	f := gputest.Fixture(t, "testdata/tiny_projector.json.gz")
	const n, h, w = 4, 12, 12
	rng := rand.New(rand.NewPCG(1, 1))
	m, err := NewResNet(d, rng, Config{Arch: "tiny", InChannels: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	pr, err := NewProjector(d, rng, m.Dim, "32-32-16", false)
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
	p := NewPass(d, true)
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
	gputest.Expect(t, z, f, "y", kcheck.Reduction)
	expectGrads(t, f, "backbone.", m.Params(), m.BatchNorms())
	expectGrads(t, f, "", pr.Params(), pr.BatchNorms())
	for _, p := range m.Params() {
		if !strings.HasPrefix(p.Name, "conv1") && !strings.HasPrefix(p.Name, "bn1") && !strings.HasPrefix(p.Name, "layer") {
			t.Errorf("backbone parameter %q is not named as torchvision names it", p.Name)
		}
	}
}
