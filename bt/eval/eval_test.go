package eval

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
	"github.com/bt-org/bt/models"
)

// clusters draws n features of dim around one centre per class, spread
// apart by sep relative to unit noise; shuffled labels make them useless.
func clusters(rng *rand.Rand, n, dim, classes int, sep float64, shuffle bool) *Features {
	centres := make([]float64, classes*dim)
	for i := range centres {
		centres[i] = rng.NormFloat64() * sep
	}
	f := &Features{N: n, Dim: dim, X: make([]float32, n*dim), Labels: make([]int32, n)}
	for i := range n {
		c := i % classes
		f.Labels[i] = int32(c)
		for j := range dim {
			f.X[i*dim+j] = float32(centres[c*dim+j] + rng.NormFloat64())
		}
	}
	if shuffle {
		rng.Shuffle(n, func(i, j int) { f.Labels[i], f.Labels[j] = f.Labels[j], f.Labels[i] })
	}
	return f
}

func split(rng *rand.Rand, n, dim, classes int, sep float64, shuffle bool) (*Features, *Features) {
	all := clusters(rng, 2*n, dim, classes, sep, shuffle)
	train := &Features{N: n, Dim: dim, X: all.X[:n*dim], Labels: all.Labels[:n]}
	test := &Features{N: n, Dim: dim, X: all.X[n*dim:], Labels: all.Labels[n:]}
	return train, test
}

// TestEvaluationKnownAnswers: separable features are classified (almost)
// perfectly by kNN and the linear probe; features whose labels were shuffled give
// chance accuracy.
func TestEvaluationKnownAnswers(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const n, dim, classes = 600, 17, 7
	cfg := DefaultProbeConfig()
	cfg.Epochs = 30
	for _, tc := range []struct {
		name     string
		sep      float64
		shuffle  bool
		min, max float64
	}{
		// A linear probe trained for 30 epochs can miss a point or two of
		// 600 on some draws of the centres.
		{"separable", 8, false, 0.99, 1},
		{"shuffled labels", 8, true, 0, 0.3}, // chance is 1/7 ≈ 0.14
	} {
		t.Run(tc.name, func(t *testing.T) {
			train, test := split(rng, n, dim, classes, tc.sep, tc.shuffle)
			acc, err := KNN(d, train, test, classes, []int{1, 20, 200}, 0.07)
			if err != nil {
				t.Fatal(err)
			}
			for i, a := range acc {
				if a < tc.min || a > tc.max {
					t.Errorf("kNN accuracy %d: %.3f outside [%v, %v]", i, a, tc.min, tc.max)
				}
			}
			res, err := LinearProbe(d, train, test, classes, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Top1 < tc.min || res.Top1 > tc.max {
				t.Errorf("probe top-1 %.3f outside [%v, %v]", res.Top1, tc.min, tc.max)
			}
			if res.Top5 < res.Top1 {
				t.Errorf("top-5 %.3f below top-1 %.3f", res.Top5, res.Top1)
			}
		})
	}
}

// TestKNNChunks checks the blocked similarity search against a direct one:
// more training rows than one block, k larger than some blocks.
func TestKNNChunks(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	train, test := split(rng, knnChunk+123, 5, 3, 1.5, false)
	test.N, test.X, test.Labels = 300, test.X[:300*5], test.Labels[:300]
	got, err := KNN(d, train, test, 3, []int{1, 7}, 0.07)
	if err != nil {
		t.Fatal(err)
	}
	trn, tst := normalised(train.X, train.N, 5), normalised(test.X, test.N, 5)
	for ki, k := range []int{1, 7} {
		correct := 0
		for i := range test.N {
			type nb struct {
				s float64
				l int32
			}
			var all []nb
			for j := range train.N {
				s := 0.0
				for c := range 5 {
					s += float64(tst[i*5+c]) * float64(trn[j*5+c])
				}
				all = append(all, nb{s, train.Labels[j]})
			}
			votes := make([]float64, 3)
			for range k {
				b := 0
				for j := range all {
					if all[j].s > all[b].s {
						b = j
					}
				}
				votes[all[b].l] += expOver(all[b].s, 0.07)
				all[b].s = -2
			}
			if int32(argmax(votes)) == test.Labels[i] {
				correct++
			}
		}
		want := float64(correct) / float64(test.N)
		if d := got[ki] - want; d > 0.01 || d < -0.01 {
			t.Errorf("k=%d: blocked kNN %.4f, direct %.4f", k, got[ki], want)
		}
	}
}

func expOver(s, t float64) float64 { return math.Exp(s / t) }

// TestProbeScaleInvariant: the probe standardises its features, so the same
// features shifted and scaled per dimension by factors from 1e-3 to 1e3
// are probed to the same accuracy, where a plain SGD probe at lr 0.3
// diverges or barely moves.
func TestProbeScaleInvariant(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const n, dim, classes = 600, 17, 7
	cfg := DefaultProbeConfig()
	cfg.Epochs = 10
	train, test := split(rng, n, dim, classes, 1.5, false)
	base, err := LinearProbe(d, train, test, classes, cfg)
	if err != nil {
		t.Fatal(err)
	}
	scale, shift := make([]float32, dim), make([]float32, dim)
	for j := range dim {
		scale[j] = float32(math.Pow(10, 6*rng.Float64()-3))
		shift[j] = float32(100 * rng.NormFloat64())
	}
	warp := func(f *Features) *Features {
		out := *f
		out.X = make([]float32, len(f.X))
		for i, v := range f.X {
			out.X[i] = v*scale[i%dim] + shift[i%dim]
		}
		return &out
	}
	warped, err := LinearProbe(d, warp(train), warp(test), classes, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if math.Abs(base.Top1-warped.Top1) > 0.01 || base.Top1 < 0.3 {
		t.Errorf("top-1 %.3f on the features, %.3f on them rescaled; want equal (and above chance)", base.Top1, warped.Top1)
	}
}

// TestRepresentHalf: a random tiny backbone's representations with f16
// activations (mixed precision) against f32 on the same images: within
// HalfStorage of them, and not equal, so the activations were f16.
func TestRepresentHalf(t *testing.T) {
	d := gputest.Device(t)
	gputest.NeedF16(t, d)
	const n, c, h, w = 6, 1, 28, 28
	m, err := models.NewResNet(d, rand.New(rand.NewPCG(1, 2)), models.Config{Arch: "tiny", InChannels: c})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	x := kcheck.To32(kcheck.Normal(gputest.Rand(t), n*c*h*w))
	full, err := Represent(d, m, x, n, c, h, w, gpu.F32)
	if err != nil {
		t.Fatal(err)
	}
	half, err := Represent(d, m, x, n, c, h, w, gpu.F16)
	if err != nil {
		t.Fatal(err)
	}
	e, err := ref.RelErr(kcheck.To64(half), kcheck.To64(full))
	if err != nil || e > kcheck.HalfStorage || e == 0 {
		t.Errorf("f16 representations differ from f32 by %.3g relative (%v); want above 0 and within %g", e, err, kcheck.HalfStorage)
	}
	t.Logf("f16 against f32: %.3g relative", e)
}

// TestProbeHostMatchesDevice trains the probe on the host and on the
// device from the same draws: the same batches and updates in another
// order of float32 arithmetic, so the same accuracy within a few images.
func TestProbeHostMatchesDevice(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	const n, dim, classes = 600, 17, 7
	train, test := split(rng, n, dim, classes, 1.5, false)
	cfg := DefaultProbeConfig()
	cfg.Epochs = 10
	var res [2]ProbeResult
	for i, on := range []Place{Host, Device} {
		cfg.On = on
		var err error
		if res[i], err = LinearProbe(d, train, test, classes, cfg); err != nil {
			t.Fatal(err)
		}
	}
	if math.Abs(res[0].Top1-res[1].Top1) > 3.0/n || math.Abs(res[0].Top5-res[1].Top5) > 3.0/n || res[0].Top1 < 0.3 {
		t.Errorf("host %+v, device %+v: want the same within 3 of %d images (and above chance)", res[0], res[1], n)
	}
}
