package loss

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/fixture"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// lossShapes are (N, D) pairs: every pair of N ∈ {2, 3, 17, 65} and
// D ∈ {1, 3, 17, 65, 129}, multiples of no tile or workgroup, and two that
// need more than btloss_sum's 1024 workgroups' worth of elements, so that
// its threads stride (C of 600² on the materialised path, Gram matrices of
// 600² on the fused path).
var lossShapes = func() [][2]int {
	var s [][2]int
	for _, n := range []int{2, 3, 17, 65} {
		for _, d := range []int{1, 3, 17, 65, 129} {
			s = append(s, [2]int{n, d})
		}
	}
	return append(s, [2]int{17, 600}, [2]int{600, 5})
}()

// lossParams are the (λ, scale) pairs a batch of n is checked with: the
// paper's λ, and from n = 17 on a large λ with solo-learn's scale, under
// which the off-diagonal gradient is not swamped by the diagonal's and an
// error in it would show. With n = 3 and a large λ, most of dL/dẐ lies
// along Ẑ itself, which the normalisation's backward takes away; the same
// formulas evaluated in float32 on the CPU then differ from float64 by up
// to 2e-4 at D = 65 and 129 (measured over random draws), beyond
// kcheck.Reduction: that conditioning is the problem's, not a kernel's.
// options is the loss with weight lambda and scale, on one path.
func options(lambda, scale float32, fused bool) Options {
	o := DefaultOptions()
	o.Lambda, o.Scale, o.Path = lambda, scale, Materialised
	if fused {
		o.Path = Fused
	}
	return o
}

func lossParams(n int) [][2]float32 {
	if n <= 3 {
		return [][2]float32{{DefaultLambda, 1}, {DefaultLambda, 0.1}}
	}
	return [][2]float32{{DefaultLambda, 1}, {0.7, 0.1}}
}

// near reports whether got is within tol of want, relative to max(|want|, 1):
// sums of squares that should be 0 come out as rounding residues.
func near(got float32, want, tol float64) bool {
	return math.Abs(float64(got)-want) <= tol*math.Max(math.Abs(want), 1)
}

func checkStats(t *testing.T, s Stats, want ref.BTTerms) {
	t.Helper()
	for _, f := range []struct {
		name string
		got  float32
		want float64
	}{
		{"Loss", s.Loss, want.Loss}, {"OnDiag", s.OnDiag, want.OnDiag}, {"OffDiag", s.OffDiag, want.OffDiag},
		{"MeanDiag", s.MeanDiag, want.MeanDiag}, {"MeanAbsOff", s.MeanAbsOff, want.MeanAbsOff},
	} {
		if !near(f.got, f.want, kcheck.Reduction) {
			t.Errorf("Stats().%s = %.7g, want %.7g", f.name, f.got, f.want)
		}
	}
}

// gradCheckPair checks the float64 gradient of a scalar objective of two
// views' embeddings, za and zb, against finite differences of the
// objective: grad writes dL/dza and dL/dzb.
func gradCheckPair(rng *rand.Rand, za, zb []float64, loss func(za, zb []float64) float64, grad func(dza, dzb, za, zb []float64)) error {
	return ref.GradCheck(rng, [][]float64{za, zb},
		func(ins [][]float64) []float64 { return []float64{loss(ins[0], ins[1])} },
		func(ins [][]float64, dout []float64) [][]float64 {
			dza, dzb := make([]float64, len(za)), make([]float64, len(zb))
			grad(dza, dzb, ins[0], ins[1])
			for i := range dza {
				dza[i] *= dout[0]
			}
			for i := range dzb {
				dzb[i] *= dout[0]
			}
			return [][]float64{dza, dzb}
		}, 20, 1e-5)
}

// TestLossGradCheck checks the float64 backward against finite differences
// of the float64 loss.
func TestLossGradCheck(t *testing.T) {
	rng := gputest.Rand(t)
	for _, s := range [][2]int{{2, 1}, {3, 3}, {17, 5}, {5, 17}, {2, 7}} {
		for _, p := range [][2]float32{{DefaultLambda, 1}, {0.7, 0.1}} {
			n, d, lambda, scale := s[0], s[1], float64(p[0]), float64(p[1])
			t.Run(fmt.Sprintf("%dx%d/lambda=%g", n, d, p[0]), func(t *testing.T) {
				za, zb := ref.BTViews(rng, n, d)
				err := gradCheckPair(rng, za, zb,
					func(za, zb []float64) float64 { return ref.BTLoss(za, zb, n, d, lambda, scale).Loss },
					func(dza, dzb, za, zb []float64) { ref.BTLossBackward(dza, dzb, za, zb, n, d, lambda, scale) })
				if err != nil {
					t.Error(err)
				}
			})
		}
	}
}

// TestLoss checks both paths' loss, gradients and statistics against the
// float64 reference on fresh inputs, with NaN-poisoned outputs, with the
// sums in subgroups and in workgroup memory.
func TestLoss(t *testing.T) {
	gputest.SubgroupModes(t, func(t *testing.T, d *gpu.Device) {
		for _, fused := range []bool{false, true} {
			for _, s := range lossShapes {
				for i, p := range lossParams(s[0]) {
					n, dim := s[0], s[1]
					t.Run(fmt.Sprintf("%s/%dx%d/lambda=%g,scale=%g", PathName(fused), n, dim, p[0], p[1]), func(t *testing.T) {
						l, err := NewBarlowTwins(d, n, dim, options(p[0], p[1], fused))
						if err != nil {
							t.Fatal(err)
						}
						defer l.Release()
						// Small tiles make btloss_tile cover C with several,
						// the last ones partly outside it; the other is what
						// GemmTileFor gives GPUs, which lavapipe does not get.
						l.tile = []gpu.GemmTile{{BM: 16, BN: 32, BK: 4, TM: 4, TN: 8}, {BM: 128, BN: 128, BK: 16, TM: 8, TN: 8}}[i]
						lambda, scale := float64(p[0]), float64(p[1])
						var want ref.BTTerms
						gputest.Check(t, d, kcheck.LossOp(l, n, dim, kcheck.BTLossRef(n, dim, lambda, scale, &want)))
						got, err := l.Stats()
						if err != nil {
							t.Fatal(err)
						}
						checkStats(t, got, want)
						if l.gramLoss() {
							// Where the loss came from the Gram matrices, the
							// tiles' own Σ_{i≠j} C² is not otherwise checked.
							v, err := l.tileStat.Download()
							if err != nil {
								t.Fatal(err)
							}
							if !near(v[2], want.OffDiag, kcheck.Reduction) {
								t.Errorf("btloss_tile's Σ_{i≠j} C² = %.7g, want %.7g", v[2], want.OffDiag)
							}
						}
					})
				}
			}
		}
	})
}

// runLoss runs a loss's forward and backward on za and zb [n, d] and
// returns the loss, both gradients and the statistics.
func runLoss(d *gpu.Device, l *BarlowTwins, za, zb []float64, n, dim int) (out [3][]float64, s Stats, err error) {
	return runLossInto(d, l, za, zb, nil, nil, nil, n, dim)
}

// runLossInto is runLoss with the loss and gradient tensors starting from
// the given values (nil: zeros).
func runLossInto(d *gpu.Device, l *BarlowTwins, za, zb, loss0, da0, db0 []float64, n, dim int) (out [3][]float64, s Stats, err error) {
	var ts []*gpu.Tensor
	defer func() {
		for _, x := range ts {
			x.Release()
		}
	}()
	get := func(v []float64, shape ...int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var x *gpu.Tensor
		if v == nil {
			x, err = d.NewTensor(shape...)
		} else {
			x, err = d.FromSlice(kcheck.To32(v), shape...)
		}
		ts = append(ts, x)
		return x
	}
	a, b := get(za, n, dim), get(zb, n, dim)
	loss, da, db := get(loss0, 1), get(da0, n, dim), get(db0, n, dim)
	if err != nil {
		return out, s, err
	}
	if err = d.Run(func(r *gpu.Recorder) error {
		if err := l.Forward(r, loss, a, b); err != nil {
			return err
		}
		return l.Backward(r, da, db)
	}); err != nil {
		return out, s, err
	}
	for i, x := range []*gpu.Tensor{loss, da, db} {
		v, err := x.Download()
		if err != nil {
			return out, s, err
		}
		out[i] = kcheck.To64(v)
	}
	s, err = l.Stats()
	return out, s, err
}

// TestLossPathsAgree runs both paths on the same inputs and compares them
// with each other.
func TestLossPathsAgree(t *testing.T) {
	d := gputest.Device(t)
	rng := gputest.Rand(t)
	for _, s := range [][2]int{{17, 65}, {65, 17}, {3, 129}, {2, 3}} {
		n, dim := s[0], s[1]
		t.Run(fmt.Sprintf("%dx%d", n, dim), func(t *testing.T) {
			za, zb := ref.BTViews(rng, n, dim)
			var outs [2][3][]float64
			var stats [2]Stats
			for i, fused := range []bool{false, true} {
				p := lossParams(n)[1]
				l, err := NewBarlowTwins(d, n, dim, options(p[0], p[1], fused))
				if err != nil {
					t.Fatal(err)
				}
				outs[i], stats[i], err = runLoss(d, l, za, zb, n, dim)
				l.Release()
				if err != nil {
					t.Fatal(err)
				}
			}
			for k, name := range []string{"loss", "dL/dza", "dL/dzb"} {
				if err := ref.Compare(outs[1][k], outs[0][k], kcheck.Reduction); err != nil {
					t.Errorf("%s: fused against materialised: %v", name, err)
				}
			}
			want := ref.BTTerms{Loss: float64(stats[0].Loss), OnDiag: float64(stats[0].OnDiag), OffDiag: float64(stats[0].OffDiag),
				MeanDiag: float64(stats[0].MeanDiag), MeanAbsOff: float64(stats[0].MeanAbsOff)}
			checkStats(t, stats[1], want)
		})
	}
}

// TestLossFixture compares both paths, and the float64 reference, with
// PyTorch's loss and gradients computed as the official code does
// (tools/fixtures/loss.py).
func TestLossFixture(t *testing.T) {
	d := gputest.Device(t)
	for _, name := range []string{"loss", "loss_wide"} {
		f, err := fixture.Load("testdata/" + name + ".json")
		if err != nil {
			t.Fatal(err)
		}
		n, err1 := f.Int("n")
		dim, err2 := f.Int("d")
		lambda, err3 := f.Float("lambda")
		scale, err4 := f.Float("scale")
		for _, err := range []error{err1, err2, err3, err4} {
			if err != nil {
				t.Fatal(err)
			}
		}
		get := func(name string) []float64 {
			x, err := f.Get(name)
			if err != nil {
				t.Fatal(err)
			}
			return x.Data
		}
		z1, z2, want := get("z1"), get("z2"), [3][]float64{get("loss"), get("dz1"), get("dz2")}
		on, off := get("on_diag")[0], get("off_diag")[0]

		t.Run(name+"/float64", func(t *testing.T) {
			terms := ref.BTLoss(z1, z2, n, dim, lambda, scale)
			dz1, dz2 := make([]float64, n*dim), make([]float64, n*dim)
			ref.BTLossBackward(dz1, dz2, z1, z2, n, dim, lambda, scale)
			for k, got := range [][]float64{{terms.Loss}, dz1, dz2, {terms.OnDiag}, {terms.OffDiag}} {
				w := append(want[:], []float64{on}, []float64{off})[k]
				if err := ref.Compare(got, w, 1e-10); err != nil {
					t.Errorf("output %d: %v", k, err)
				}
			}
		})
		for _, fused := range []bool{false, true} {
			t.Run(name+"/"+PathName(fused), func(t *testing.T) {
				l, err := NewBarlowTwins(d, n, dim, options(float32(lambda), float32(scale), fused))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release()
				got, s, err := runLoss(d, l, z1, z2, n, dim)
				if err != nil {
					t.Fatal(err)
				}
				for k, name := range []string{"loss", "dz1", "dz2"} {
					if err := ref.Compare(got[k], want[k], kcheck.Reduction); err != nil {
						t.Errorf("%s: %v", name, err)
					}
				}
				if !near(s.OnDiag, on, kcheck.Reduction) || !near(s.OffDiag, off, kcheck.Reduction) {
					t.Errorf("on/off-diagonal terms %.7g, %.7g; PyTorch %.7g, %.7g", s.OnDiag, s.OffDiag, on, off)
				}
			})
		}
	}
}

// TestLossErrors checks that what would make wgpu-native abort, or make a
// result wrong, is refused in Go with a message saying what to change.
func TestLossErrors(t *testing.T) {
	d := gputest.Device(t)
	lim := int(maxBinding(d) / 4)
	side := int(math.Sqrt(float64(lim))) + 1 // side² floats exceed a binding
	cases := []struct {
		name   string
		n, dim int
		fused  bool
		err    string
	}{
		{"batch of one", 1, 8, false, "at least 2"},
		{"no width", 4, 0, true, "width ≥ 1"},
		{"C too large", 2, side, false, "use the fused path"},
		{"Gram too large", side, 2, true, "use the materialised path"},
		{"embeddings too large", 2, lim/2 + 1, true, "smaller batch or width"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewBarlowTwins(d, tc.n, tc.dim, options(DefaultLambda, 1, tc.fused))
			if err == nil {
				l.Release()
				t.Fatalf("NewBarlowTwins(%d, %d, fused=%v) succeeded", tc.n, tc.dim, tc.fused)
			}
			if !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("error %q does not say %q", err, tc.err)
			}
		})
	}

	l, err := NewBarlowTwins(d, 4, 3, options(DefaultLambda, 1, false))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release()
	mk := func(shape ...int) *gpu.Tensor {
		x, err := d.NewTensor(shape...)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(x.Release)
		return x
	}
	z, z2, wrong, loss := mk(4, 3), mk(4, 3), mk(3, 4, 2), mk(1)
	record := []struct {
		name string
		fn   func(r *gpu.Recorder) error
		err  string
	}{
		{"backward before forward", func(r *gpu.Recorder) error { return l.Backward(r, z, z2) }, "Forward recorded first"},
		{"wrong embedding size", func(r *gpu.Recorder) error { return l.Forward(r, loss, z, wrong) }, "made for [4, 3]"},
		{"nil loss", func(r *gpu.Recorder) error { return l.Forward(r, nil, z, z2) }, "loss tensor"},
		{"one gradient tensor for both", func(r *gpu.Recorder) error {
			if err := l.Forward(r, loss, z, z2); err != nil {
				return err
			}
			return l.Backward(r, z, z)
		}, "separate tensors"},
	}
	for _, tc := range record {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Run(tc.fn)
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("got %v, want an error saying %q", err, tc.err)
			}
		})
	}
	if _, err := (&BarlowTwins{}).Stats(); err == nil {
		t.Error("Stats of a loss without workspaces succeeded")
	}
}

// TestAutoFused checks the choice of path against its documented rule.
func TestAutoFused(t *testing.T) {
	d := gputest.Device(t)
	side := int(math.Sqrt(float64(maxBinding(d)/4))) + 1
	cases := []struct {
		n, dim int
		fused  bool
	}{
		{256, 2048, true},   // D > 4N/3: fewer flops without C
		{2048, 8192, true},  // the paper's shape
		{1024, 1024, false}, // D ≤ 4N/3: C is cheaper
		{512, 128, false},
		{3, 4, false},      // 4 = 4N/3: tie goes to C
		{8, side, true},    // C does not fit
		{side, 4, false},   // the Gram matrices do not fit
		{side, side, true}, // neither fits: NewBarlowTwins says so
	}
	for _, tc := range cases {
		if got := AutoFused(d, tc.n, tc.dim); got != tc.fused {
			t.Errorf("AutoFused(%d, %d) = %v, want %v", tc.n, tc.dim, got, tc.fused)
		}
	}
}

// TestLossAblations covers the paper's loss ablations on both paths —
// the redundancy term only (invariance weight 0), no normalisation of the
// embeddings, normalisation along the features — the float64 gradient
// against finite differences, then the GPU loss and gradients against
// float64, with the sums in subgroups and in workgroup memory.
func TestLossAblations(t *testing.T) {
	gputest.SubgroupModes(t, func(t *testing.T, d *gpu.Device) {
		rng := gputest.Rand(t)
		for _, o := range []ref.BTOptions{{OnDiag: 0, Lambda: 0.3, Scale: 1}, {OnDiag: 1, Lambda: 0.3, Scale: 1, NoNorm: true},
			{OnDiag: 1, Lambda: 0.3, Scale: 1, FeatureNorm: true}} {
			for _, s := range [][2]int{{17, 5}, {5, 17}, {65, 33}} {
				lossAblation(t, d, rng, o, s[0], s[1])
			}
		}
	})
}

func lossAblation(t *testing.T, d *gpu.Device, rng *rand.Rand, o ref.BTOptions, n, dim int) {
	za, zb := ref.BTViews(rng, n, dim)
	err := gradCheckPair(rng, za, zb,
		func(za, zb []float64) float64 { return ref.BTLossWith(za, zb, n, dim, o).Loss },
		func(dza, dzb, za, zb []float64) { ref.BTLossWithBackward(dza, dzb, za, zb, n, dim, o) })
	if err != nil {
		t.Errorf("%+v %dx%d finite differences: %v", o, n, dim, err)
	}
	for _, fused := range []bool{false, true} {
		t.Run(fmt.Sprintf("%s/%dx%d/ondiag=%g,nonorm=%v,featurenorm=%v", PathName(fused), n, dim, o.OnDiag, o.NoNorm, o.FeatureNorm), func(t *testing.T) {
			opt := options(float32(o.Lambda), 1, fused)
			opt.RedundancyOnly = o.OnDiag == 0
			switch {
			case o.NoNorm:
				opt.Norm = NoNorm
			case o.FeatureNorm:
				opt.Norm = FeatureNorm
			}
			l, err := NewBarlowTwins(d, n, dim, opt)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release()
			gputest.Check(t, d, kcheck.LossOp(l, n, dim, func(outs, ins [][]float64) {
				outs[0][0] = ref.BTLossWith(ins[0], ins[1], n, dim, o).Loss
				ref.BTLossWithBackward(outs[1], outs[2], ins[0], ins[1], n, dim, o)
			}))
		})
	}
}

// TestLossNonFinite: a NaN or an infinity anywhere in either view's
// embeddings gives a non-finite loss on both paths, so the guard sees a
// diverged network instead of a plausible number.
func TestLossNonFinite(t *testing.T) {
	d := gputest.Device(t)
	const n, dim = 6, 5
	rng := rand.New(rand.NewPCG(41, 1))
	for _, bad := range []float64{math.NaN(), math.Inf(1), math.Inf(-1)} {
		for _, fused := range []bool{false, true} {
			for _, view := range []int{0, 1} {
				za, zb := ref.BTViews(rng, n, dim)
				[][]float64{za, zb}[view][rng.IntN(n*dim)] = bad
				l, err := NewBarlowTwins(d, n, dim, options(DefaultLambda, 1, fused))
				if err != nil {
					t.Fatal(err)
				}
				out, _, err := runLoss(d, l, za, zb, n, dim)
				l.Release()
				if err != nil {
					t.Fatal(err)
				}
				if v := out[0][0]; !math.IsNaN(v) && !math.IsInf(v, 0) {
					t.Errorf("%v in view %d, %s path: loss %v, want it non-finite", bad, view, PathName(fused), v)
				}
			}
		}
	}
}

// TestLossScales checks Scales against each embedding dimension's standard
// deviation over the batch, taken in float64, on both paths, every value
// within kcheck.Reduction; RMSOff against C's off-diagonal entries; and
// that a loss that does not normalise over the batch has no scales.
func TestLossScales(t *testing.T) {
	d := gputest.Device(t)
	rng := rand.New(rand.NewPCG(43, 1))
	for _, fused := range []bool{false, true} {
		for _, s := range [][2]int{{3, 17}, {17, 65}, {65, 3}, {17, 129}} {
			n, dim := s[0], s[1]
			t.Run(fmt.Sprintf("%s/%dx%d", PathName(fused), n, dim), func(t *testing.T) {
				l, err := NewBarlowTwins(d, n, dim, options(DefaultLambda, 1, fused))
				if err != nil {
					t.Fatal(err)
				}
				defer l.Release()
				za, zb := ref.BTViews(rng, n, dim)
				if _, _, err := runLoss(d, l, za, zb, n, dim); err != nil {
					t.Fatal(err)
				}
				got, err := l.Scales().Download()
				if err != nil {
					t.Fatal(err)
				}
				if len(got) != 2*dim {
					t.Fatalf("%d scales, want 2·%d", len(got), dim)
				}
				for v, z := range [][]float64{za, zb} {
					for j := range dim {
						mean, sq := 0.0, 0.0
						for i := range n {
							mean += z[i*dim+j]
						}
						mean /= float64(n)
						for i := range n {
							sq += (z[i*dim+j] - mean) * (z[i*dim+j] - mean)
						}
						want := math.Sqrt(sq / float64(n))
						if g := Std(got[v*dim+j]); !near(float32(g), want, kcheck.Reduction) {
							t.Errorf("view %d, dimension %d: standard deviation %.7g, want %.7g", v, j, g, want)
						}
					}
				}
				st, err := l.Stats()
				if err != nil {
					t.Fatal(err)
				}
				want := ref.BTLoss(za, zb, n, dim, DefaultLambda, 1)
				if rms := math.Sqrt(want.OffDiag / float64(dim*(dim-1))); !near(st.RMSOff, rms, kcheck.Reduction) {
					t.Errorf("RMSOff %.7g, want %.7g", st.RMSOff, rms)
				}
			})
		}
	}
	for _, norm := range []Norm{FeatureNorm, NoNorm} {
		o := DefaultOptions()
		o.Norm = norm
		l, err := NewBarlowTwins(d, 4, 8, o)
		if err != nil {
			t.Fatal(err)
		}
		if l.Scales() != nil {
			t.Errorf("normalisation %s: Scales is not nil", norm)
		}
		l.Release()
	}
}
