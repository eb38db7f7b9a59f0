// Package augstats is the statistical test of the Barlow Twins
// augmentations, shared by the CPU path (package pipeline) and the device
// path (package augment) so that both pass the same table with the same
// bounds. A path renders views from 8-bit sources and draws; the rates of
// flip, colour jitter, grayscale, blur and solarization are then read from
// the rendered pixels, not from the draws: each output is compared with the
// CPU's renders of its draw with that one step on and off. The crop
// geometry is measured on the draws the path consumed, and the draw-only
// properties (jitter order and factor ranges, the σ distribution) on the
// same draws.
package augstats

import (
	"cmp"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/bt-org/bt/pipeline"
)

// Path renders view v of every sample: sample k is srcs[k] augmented as
// ps[k] says (its crop in srcs[k]'s pixels), returned at
// [k·C·Size², (k+1)·C·Size²) normalised, as Augmenter.Apply writes it.
type Path func(t testing.TB, v pipeline.ViewConfig, srcs []pipeline.Image8, ps []pipeline.Params) []float32

// CPU is the CPU path: each source converted to float as the loader does
// for a folder, then Augmenter.Apply.
func CPU(t testing.TB, v pipeline.ViewConfig, srcs []pipeline.Image8, ps []pipeline.Params) []float32 {
	t.Helper()
	a, err := pipeline.NewAugmenter(v)
	if err != nil {
		t.Fatal(err)
	}
	sz := v.Channels() * v.Size * v.Size
	out := make([]float32, len(srcs)*sz)
	var src pipeline.Image
	for k := range srcs {
		srcs[k].ToImage(&src, srcs[k].C)
		a.Apply(out[k*sz:(k+1)*sz], &src, &ps[k])
	}
	return out
}

// Draws is how many views each row of the table renders, as many as the
// draw-only test this replaced: the rates' bounds are 5 binomial standard
// deviations at this count, which catches a step applied to 10% fewer
// views than drawn (0.2 → 0.18 is 7σ).
const Draws = 20000

// chunk is how many views one Path call renders, a device batch.
const chunk = 1000

// row is one view distribution of the table.
type row struct {
	name string
	view pipeline.ViewConfig
	// h×w is the full-resolution image the crops are drawn on; the path
	// renders from it decoded at 1/denom, with the crops scaled to match,
	// as the loader's DCT-scaled decoding does.
	h, w, denom int
}

// table is the presets' views, rendered at 12 px instead of their 224, 32
// and 28: the rates do not depend on the output size, and the comparisons
// render every view six times on the CPU. At 12 px every crop of a 375×500
// image (at least 106 px a side) is at least 8 output sizes wide, so the
// loader would decode it at 1/8 as here.
func table(t testing.TB) []row {
	t.Helper()
	preset := func(name pipeline.PresetName) pipeline.Config {
		c, err := pipeline.Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		c.A.Size, c.B.Size = 12, 12
		return c
	}
	imagenet, cifar, fashion := preset("imagenet"), preset("cifar"), preset("fashion-mnist")
	return []row{
		{"imagenet/A", imagenet.A, 375, 500, 8},
		{"imagenet/B", imagenet.B, 375, 500, 8},
		{"cifar/A", cifar.A, 32, 32, 1},
		{"cifar/B", cifar.B, 32, 32, 1},
		{"fashion-mnist/B", fashion.B, 28, 28, 1},
	}
}

// step is one random augmentation whose rate is read from the outputs.
type step struct {
	name string
	prob func(v *pipeline.ViewConfig) float64
	// set switches the step on or off in p; a step switched on that the
	// draw left off takes its parameters (jitter order and factors, σ) from
	// alt, a draw with every step on.
	set func(p *pipeline.Params, on bool, alt *pipeline.Params)
}

var steps = []step{
	{"flip", func(v *pipeline.ViewConfig) float64 { return v.FlipP },
		func(p *pipeline.Params, on bool, _ *pipeline.Params) { p.Flipped = on }},
	{"jitter", func(v *pipeline.ViewConfig) float64 { return v.JitterP },
		func(p *pipeline.Params, on bool, alt *pipeline.Params) {
			if on && !p.Jittered {
				p.Order, p.Factors = alt.Order, alt.Factors
			}
			p.Jittered = on
		}},
	{"grayscale", func(v *pipeline.ViewConfig) float64 { return v.GrayP },
		func(p *pipeline.Params, on bool, _ *pipeline.Params) { p.Gray = on }},
	{"blur", func(v *pipeline.ViewConfig) float64 { return v.BlurP },
		func(p *pipeline.Params, on bool, alt *pipeline.Params) {
			if on && !p.Blurred {
				p.Sigma = alt.Sigma
			}
			p.Blurred = on
		}},
	{"solarize", func(v *pipeline.ViewConfig) float64 { return v.SolarizeP },
		func(p *pipeline.Params, on bool, _ *pipeline.Params) { p.Solarized = on }},
}

// Thresholds of the comparison, in normalised units. The device path is
// within 2e-4 of the CPU's render of the same draw except where
// solarization's threshold falls between the two (package augment's
// TestKernelsMatchCPU); tau is ten times that.
const (
	tau = 2e-3
	// minSeparated is the fewest values in which the two renders of a step
	// must differ (by 2·tau) for the output to tell them apart. Below it
	// the step has no visible effect on this view (a blur with σ under
	// about 0.27 output pixels, solarization of a view left dark by the
	// jitter): any output is then right, and the sample counts as drawn.
	minSeparated = 3
	// maxUndecided bounds the fraction of a step's samples that count as
	// drawn, so that the test cannot turn into a test of the draws. A σ
	// below 0.27 is 9% of the range [0.1, 2]; the sources keep the other
	// steps visible in all but 3% of the views or fewer.
	maxUndecided = 0.12
)

// Check runs the table through path.
func Check(t *testing.T, path Path) {
	for _, tt := range table(t) {
		t.Run(tt.name, func(t *testing.T) { checkRow(t, path, tt) })
	}
}

func checkRow(t *testing.T, path Path, tt row) {
	v := tt.view
	a, err := pipeline.NewAugmenter(v)
	if err != nil {
		t.Fatal(err)
	}
	// The renders with a step switched on that the draw left off take the
	// step's parameters from a draw with every step on. (The presets
	// without blur keep the official σ range and kernel size, so the render
	// with blur on shows that the path does not blur them.)
	all := v
	all.JitterP, all.BlurP = 1, 1
	alt, err := pipeline.NewAugmenter(all)
	if err != nil {
		t.Fatal(err)
	}
	sz := v.Channels() * v.Size * v.Size
	sh, sw := (tt.h+tt.denom-1)/tt.denom, (tt.w+tt.denom-1)/tt.denom
	r := rand.New(rand.NewPCG(1, 2))
	altR := rand.New(rand.NewPCG(3, 4))
	pool := make([]pipeline.Image8, 4)
	for i := range pool {
		pool[i] = source(altR, v.Channels(), sh, sw)
	}
	ref := newReference(t, v)
	st := stats{fired: make([]int, len(steps)), undecided: make([]int, len(steps))}
	for k0 := 0; k0 < Draws; k0 += chunk {
		n := min(chunk, Draws-k0)
		srcs := make([]pipeline.Image8, n)
		ps := make([]pipeline.Params, n)
		alts := make([]pipeline.Params, n)
		for k := range n {
			srcs[k] = pool[(k0+k)%len(pool)]
			ps[k] = a.Draw(r, tt.h, tt.w)
			ps[k].Crop = ps[k].Crop.Scaled(tt.denom)
			alts[k] = alt.Draw(altR, tt.h, tt.w)
		}
		out := path(t, v, srcs, ps)
		if len(out) != n*sz {
			t.Fatalf("the path rendered %d values for %d views of %d", len(out), n, sz)
		}
		for k := range n {
			st.crop(t, &tt, &ps[k])
			st.draw(t, &v, &ps[k])
			o := out[k*sz : (k+1)*sz]
			for i, x := range o {
				if math.IsNaN(float64(x)) {
					t.Fatalf("view %d: value %d is NaN (not written?)", k0+k, i)
				}
			}
			ref.draw(&srcs[k], ps[k])
			for si := range steps {
				if !visible(&steps[si], &v) {
					continue
				}
				fired, decided := ref.classify(t, &steps[si], o, &alts[k])
				if !decided {
					st.undecided[si]++
				}
				if fired {
					st.fired[si]++
				}
			}
		}
	}
	st.report(t, &v)
	if ref.neither > 0 {
		t.Errorf("%d comparisons found the output to be neither the render with the step on nor the one with it off", ref.neither)
	}
}

// visible reports whether a step can show in view v at all: grayscale
// does nothing to one channel.
func visible(s *step, v *pipeline.ViewConfig) bool {
	return s.name != "grayscale" || v.Channels() == 3
}

// reference renders the CPU's views of one draw for the comparisons: the
// draw itself, and the draw with one step switched.
type reference struct {
	aug      *pipeline.Augmenter
	src      pipeline.Image
	drawn    []float32
	switched []float32
	p        pipeline.Params
	neither  int // comparisons whose output was neither render
}

func newReference(t testing.TB, v pipeline.ViewConfig) *reference {
	a, err := pipeline.NewAugmenter(v)
	if err != nil {
		t.Fatal(err)
	}
	sz := v.Channels() * v.Size * v.Size
	return &reference{aug: a, drawn: make([]float32, sz), switched: make([]float32, sz)}
}

// draw renders view p of src, which the comparisons then switch.
func (r *reference) draw(src *pipeline.Image8, p pipeline.Params) {
	src.ToImage(&r.src, src.C)
	r.p = p
	r.aug.Apply(r.drawn, &r.src, &p)
}

// classify reports whether out shows step st, and whether it could tell.
// The CPU renders the draw with the step on and with it off; in the values
// where the two differ, out votes for the nearer. A step without visible
// effect counts as drawn (see minSeparated).
func (r *reference) classify(t testing.TB, st *step, out []float32, alt *pipeline.Params) (fired, decided bool) {
	t.Helper()
	on, off := r.p, r.p
	st.set(&on, true, alt)
	st.set(&off, false, alt)
	wasOn := on == r.p
	sw := off
	if !wasOn {
		sw = on
	}
	r.aug.Apply(r.switched, &r.src, &sw)
	onR, offR := r.drawn, r.switched
	if !wasOn {
		onR, offR = r.switched, r.drawn
	}
	separated, votes := 0, 0
	for i, x := range out {
		a, b := float64(onR[i]), float64(offR[i])
		if math.Abs(a-b) <= 2*tau {
			continue
		}
		separated++
		if math.Abs(float64(x)-a) < math.Abs(float64(x)-b) {
			votes++
		}
	}
	if separated < minSeparated {
		return wasOn, false
	}
	fired = 2*votes > separated
	// Nearer is not enough: the output must be one of the two renders (up
	// to a few values where solarization's threshold falls between the path
	// and the CPU), else the vote means nothing.
	near := offR
	if fired {
		near = onR
	}
	bad := 0
	for i, x := range out {
		if math.Abs(float64(x-near[i])) > tau {
			bad++
		}
	}
	if bad > len(out)/100+1 {
		r.neither++
		if r.neither == 1 {
			t.Errorf("%s: the output differs from the CPU's render in %d of %d values by more than %g (first such view; the count follows)", st.name, bad, len(out), tau)
		}
	}
	return fired, true
}

// stats accumulates one row's counts.
type stats struct {
	n                 int
	fired, undecided  []int // per step, from the outputs
	small, large      int   // crop area fractions below 0.2 and above 0.8
	jittered, blurred int   // from the draws, for the draw-only checks
	first             [4]int
	sigmaSum          float64
}

// crop checks the crop the path consumed, in the source's pixels, against
// the distribution of the full-resolution image it was drawn on.
func (st *stats) crop(t testing.TB, tt *row, p *pipeline.Params) {
	t.Helper()
	b, d := p.Crop, float64(tt.denom)
	x, y, w, h := float64(b.X)*d, float64(b.Y)*d, float64(b.W)*d, float64(b.H)*d
	const eps = 1e-3 // float32 scaling by 1/denom and back
	if x < -eps || y < -eps || x+w > float64(tt.w)+eps || y+h > float64(tt.h)+eps {
		t.Fatalf("crop %+v (at 1/%d) outside the %d×%d image", b, tt.denom, tt.h, tt.w)
	}
	// Sides are rounded to whole pixels, which moves the area fraction by
	// at most (W+H)/2+1/4 pixels² per unit rounding in each side.
	area := float64(tt.h * tt.w)
	frac := w * h / area
	slack := ((w+h)/2 + 0.25) / area
	v := &tt.view
	if frac < v.Scale[0]-slack || frac > v.Scale[1]+slack {
		t.Fatalf("crop area fraction %.4f outside %v", frac, v.Scale)
	}
	ar := w / h
	arSlack := 1/h + w/(h*h)
	if ar < v.Ratio[0]-arSlack || ar > v.Ratio[1]+arSlack {
		t.Fatalf("crop aspect ratio %.4f outside %v", ar, v.Ratio)
	}
	if frac < 0.2 {
		st.small++
	}
	if frac > 0.8 {
		st.large++
	}
}

// draw checks what only the draws show: the jitter order is a permutation,
// the factors and σ are in their ranges.
func (st *stats) draw(t testing.TB, v *pipeline.ViewConfig, p *pipeline.Params) {
	t.Helper()
	st.n++
	if p.Jittered {
		st.jittered++
		seen := [4]bool{}
		for _, o := range p.Order {
			seen[o] = true
		}
		if seen != [4]bool{true, true, true, true} {
			t.Fatalf("jitter order %v is not a permutation", p.Order)
		}
		st.first[p.Order[0]]++
		for i, s := range []float64{v.Brightness, v.Contrast, v.Saturation} {
			if f := float64(p.Factors[i]); f < max(0, 1-s)-1e-6 || f > 1+s+1e-6 {
				t.Fatalf("jitter factor %d = %v outside [1-%v, 1+%v]", i, f, s, s)
			}
		}
		if h := float64(p.Factors[3]); math.Abs(h) > v.Hue+1e-6 {
			t.Fatalf("hue shift %v outside ±%v", h, v.Hue)
		}
	}
	if p.Blurred {
		st.blurred++
		st.sigmaSum += float64(p.Sigma)
		if float64(p.Sigma) < v.Sigma[0] || float64(p.Sigma) > v.Sigma[1] {
			t.Fatalf("sigma %v outside %v", p.Sigma, v.Sigma)
		}
	}
}

func (st *stats) report(t *testing.T, v *pipeline.ViewConfig) {
	t.Helper()
	if st.small == 0 || st.large == 0 {
		t.Errorf("crop areas do not cover the scale range: %d below 0.2, %d above 0.8", st.small, st.large)
	}
	for si := range steps {
		if !visible(&steps[si], v) {
			continue
		}
		name := steps[si].name
		t.Logf("%-9s seen in %5d of %d views (%d could not tell, counted as drawn)", name, st.fired[si], st.n, st.undecided[si])
		rate(t, name, st.fired[si], st.n, steps[si].prob(v))
		if u := float64(st.undecided[si]) / float64(st.n); u > maxUndecided {
			t.Errorf("%s: %.1f%% of the views could not tell it on from off, more than %g%%", name, 100*u, 100*maxUndecided)
		}
	}
	// torchvision draws a uniform permutation: each op leads a quarter of
	// the time.
	for _, k := range st.first {
		rate(t, "jitter op first", k, st.jittered, 0.25)
	}
	if st.blurred > 0 {
		// σ is uniform on [lo, hi]: its mean has standard error
		// (hi-lo)/√12/√n; 5 of them again.
		lo, hi := v.Sigma[0], v.Sigma[1]
		mean := st.sigmaSum / float64(st.blurred)
		if tol := 5 * (hi - lo) / math.Sqrt(12*float64(st.blurred)); math.Abs(mean-(lo+hi)/2) > tol {
			t.Errorf("mean sigma %.4f, want %.4f ± %.4f", mean, (lo+hi)/2, tol)
		}
	}
}

// rate checks an observed frequency against a probability. The tolerance is
// five binomial standard deviations: with a fixed seed the test is
// deterministic, and 5σ both keeps a correct implementation clear of the
// bound and catches a probability that is off by a few percent at the draw
// counts used here.
func rate(t testing.TB, name string, hits, n int, p float64) {
	t.Helper()
	got := float64(hits) / float64(n)
	tol := 5 * math.Sqrt(p*(1-p)/float64(n))
	if math.Abs(got-p) > tol {
		t.Errorf("%s: rate %.4f over %d draws, want %.4f ± %.4f", name, got, n, p, tol)
	}
}

// source is an h×w image of c channels whose detail spans every scale
// (value noise summed over octaves of 1 to 16 pixels, ranked into the
// 8-bit range), so that after any crop and resize a flip, a blur and the
// colour steps change the view, and different in each channel, so that
// grayscale does.
func source(r *rand.Rand, c, h, w int) pipeline.Image8 {
	acc := make([]float64, c*h*w)
	for cell := 1; cell <= 16; cell *= 2 {
		gh, gw := h/cell+2, w/cell+2
		grid := make([]float64, c*gh*gw)
		for i := range grid {
			grid[i] = r.Float64()
		}
		for ch := range c {
			g := grid[ch*gh*gw:]
			for y := range h {
				fy := float64(y) / float64(cell)
				y0 := int(fy)
				ty := fy - float64(y0)
				for x := range w {
					fx := float64(x) / float64(cell)
					x0 := int(fx)
					tx := fx - float64(x0)
					v := (1-ty)*((1-tx)*g[y0*gw+x0]+tx*g[y0*gw+x0+1]) + ty*((1-tx)*g[(y0+1)*gw+x0]+tx*g[(y0+1)*gw+x0+1])
					acc[(y*w+x)*c+ch] += v
				}
			}
		}
	}
	// Ranks, not the sums, become the pixel values: the levels are spread
	// evenly over the 8-bit range (sums of octaves pile up around their
	// mean), so that even a view darkened by the jitter keeps pixels above
	// solarization's threshold.
	order := make([]int, len(acc))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return cmp.Compare(acc[a], acc[b]) })
	m := pipeline.Image8{}
	m.Resize(c, h, w)
	for rank, i := range order {
		m.Pix[i] = uint8(rank * 256 / len(order))
	}
	return m
}
