package pipeline

import (
	"math"
	"math/rand/v2"
	"testing"
)

// plain is a view with every random step off and identity normalisation, so
// tests see the geometry and single colour operations alone.
func plain(size, channels int) ViewConfig {
	v := ViewConfig{Size: size, Crop: CenterCrop, CenterFraction: 1, Filter: Bilinear, SolarizeThreshold: 128.0 / 255}
	for range channels {
		v.Mean = append(v.Mean, 0)
		v.Std = append(v.Std, 1)
	}
	return v
}

func randomImage(c, h, w int, seed uint64) *Image {
	r := rand.New(rand.NewPCG(seed, 0))
	m := &Image{}
	m.Resize(c, h, w)
	for i := range m.Pix {
		m.Pix[i] = r.Float32()
	}
	return m
}

func TestApplyGeometry(t *testing.T) {
	src := randomImage(3, 12, 12, 1)
	a, err := NewAugmenter(plain(12, 3))
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 3*12*12)
	for _, filter := range []Filter{Bilinear, Bicubic} {
		a.cfg.Filter = filter
		// The whole image at its own size lands every output centre on a
		// source centre, where both kernels are 1 and 0 elsewhere.
		p := Params{Crop: Box{0, 0, 12, 12}}
		a.Apply(out, src, &p)
		for i, v := range out {
			if math.Abs(float64(v-src.Pix[i])) > 1e-6 {
				t.Fatalf("%v identity: pixel %d = %v, want %v", filter, i, v, src.Pix[i])
			}
		}
		p.Flipped = true
		a.Apply(out, src, &p)
		for c := range 3 {
			for y := range 12 {
				for x := range 12 {
					got, want := out[(c*12+y)*12+x], src.Pix[(c*12+y)*12+11-x]
					if math.Abs(float64(got-want)) > 1e-6 {
						t.Fatalf("%v flip: (%d,%d,%d) = %v, want %v", filter, c, y, x, got, want)
					}
				}
			}
		}
	}
}

// TestApplyRamp checks crop and scale against the exact answer on a linear
// ramp, which a normalised symmetric kernel reproduces away from the
// borders: exactly when upscaling, and to about 1e-4 when downscaling,
// where the widened kernel is sampled at points not symmetric about the
// output centre; 1e-3 is still a tenth of the ramp's step per output pixel.
func TestApplyRamp(t *testing.T) {
	const W = 64
	src := &Image{}
	src.Resize(1, 8, W)
	for y := range 8 {
		for x := range W {
			src.Pix[y*W+x] = (float32(x) + 0.5) / W
		}
	}
	for _, tt := range []struct {
		name string
		box  Box
		flip bool
	}{
		{"upscale", Box{20, 0, 8, 8}, false},
		{"downscale", Box{4, 0, 56, 8}, false},
		{"downscale flipped", Box{4, 0, 56, 8}, true},
	} {
		for _, filter := range []Filter{Bilinear, Bicubic} {
			a, _ := NewAugmenter(plain(16, 1))
			a.cfg.Filter = filter
			out := make([]float32, 16*16)
			p := Params{Crop: tt.box, Flipped: tt.flip}
			a.Apply(out, src, &p)
			scale := tt.box.W / 16
			support := float32(filter.radius()) * max(scale, 1)
			for k := range 16 {
				u := float32(k) + 0.5
				if tt.flip {
					u = 16 - u
				}
				x := tt.box.X + u*scale
				if x-support < 0 || x+support > W {
					continue
				}
				if got, want := out[8*16+k], x/W; math.Abs(float64(got-want)) > 1e-3 {
					t.Errorf("%s %v: column %d = %v, want %v", tt.name, filter, k, got, want)
				}
			}
		}
	}
}

// TestApplyAntialias: a 4× downscale of a one-pixel checkerboard must come
// out flat gray, which point sampling (no antialiasing) would not give.
func TestApplyAntialias(t *testing.T) {
	src := &Image{}
	src.Resize(1, 32, 32)
	for y := range 32 {
		for x := range 32 {
			src.Pix[y*32+x] = float32((x + y) % 2)
		}
	}
	a, _ := NewAugmenter(plain(8, 1))
	out := make([]float32, 64)
	a.Apply(out, src, &Params{Crop: Box{0, 0, 32, 32}})
	for i, v := range out {
		if math.Abs(float64(v)-0.5) > 0.02 {
			t.Fatalf("pixel %d = %v, want 0.5 ± 0.02", i, v)
		}
	}
}

func TestApplyColour(t *testing.T) {
	px := func(r, g, b float32) *Image {
		m := &Image{}
		m.Resize(3, 4, 4)
		for i := range 16 {
			m.Pix[i], m.Pix[16+i], m.Pix[32+i] = r, g, b
		}
		return m
	}
	whole := Box{0, 0, 4, 4}
	jitter := func(op Jitter, f float32) Params {
		p := Params{Crop: whole, Jittered: true, Factors: [4]float32{1, 1, 1, 0}}
		p.Factors[op] = f
		p.Order = [4]Jitter{op, (op + 1) % 4, (op + 2) % 4, (op + 3) % 4}
		return p
	}
	tests := []struct {
		name    string
		src     *Image
		p       Params
		r, g, b float32
	}{
		{"brightness", px(0.2, 0.4, 0.8), jitter(JitterBrightness, 1.5), 0.3, 0.6, 1},
		{"contrast 0 gives mean luma", px(0.2, 0.4, 0.8), jitter(JitterContrast, 0), 0.3858, 0.3858, 0.3858},
		{"saturation 0 gives luma", px(1, 0, 0), jitter(JitterSaturation, 0), 0.299, 0.299, 0.299},
		{"hue +1/3 turns red to green", px(1, 0, 0), jitter(JitterHue, 1.0/3), 0, 1, 0},
		{"hue -1/3 turns red to blue", px(0.8, 0.1, 0.1), jitter(JitterHue, -1.0/3), 0.1, 0.1, 0.8},
		{"grayscale", px(0, 1, 0), Params{Crop: whole, Gray: true}, 0.587, 0.587, 0.587},
		{"solarize", px(0.8, 0.3, 128.0/255), Params{Crop: whole, Solarized: true}, 0.2, 0.3, 127.0 / 255},
		{"blur keeps a flat image", px(0.1, 0.5, 0.9), Params{Crop: whole, Blurred: true, Sigma: 2}, 0.1, 0.5, 0.9},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, _ := NewAugmenter(plain(4, 3))
			a.cfg.BlurKernelFraction = 1
			out := make([]float32, 48)
			a.Apply(out, tt.src, &tt.p)
			for c, want := range []float32{tt.r, tt.g, tt.b} {
				for i := range 16 {
					if got := out[c*16+i]; math.Abs(float64(got-want)) > 1e-4 {
						t.Fatalf("channel %d pixel %d = %v, want %v", c, i, got, want)
					}
				}
			}
		})
	}
}

func TestHSVRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for range 10000 {
		c := [3]float32{r.Float32(), r.Float32(), r.Float32()}
		h, s, v := rgbToHSV(c[0], c[1], c[2])
		if h < 0 || h >= 1 {
			t.Fatalf("hue %v of %v outside [0, 1)", h, c)
		}
		r2, g2, b2 := hsvToRGB(h, s, v)
		for i, got := range []float32{r2, g2, b2} {
			if math.Abs(float64(got-c[i])) > 1e-5 {
				t.Fatalf("round trip of %v gave %v %v %v", c, r2, g2, b2)
			}
		}
	}
}

// TestBlur: blurring white noise multiplies its variance by (Σw²)² for the
// separable kernel w, keeps its mean, and blurs more for a larger σ. Border
// pixels, where reflect padding correlates the noise, are left out.
func TestBlur(t *testing.T) {
	const size, radius = 64, 6 // kernel 13 = odd(0.2 × 64)
	stats := func(sigma float32) (mean, vr float64) {
		src := randomImage(1, size, size, 9)
		a, _ := NewAugmenter(plain(size, 1))
		a.cfg.BlurKernelFraction = 0.2
		out := make([]float32, size*size)
		a.Apply(out, src, &Params{Crop: Box{0, 0, size, size}, Blurred: true, Sigma: sigma})
		var vals []float64
		for y := radius; y < size-radius; y++ {
			for x := radius; x < size-radius; x++ {
				vals = append(vals, float64(out[y*size+x]))
				mean += float64(out[y*size+x])
			}
		}
		mean /= float64(len(vals))
		for _, v := range vals {
			vr += (v - mean) * (v - mean)
		}
		return mean, vr / float64(len(vals))
	}
	m0, v0 := stats(0.1) // σ 0.1 leaves the centre tap at ~1: the noise itself
	if math.Abs(v0-1.0/12) > 0.01 {
		t.Errorf("σ=0.1 variance %v, want that of uniform noise 1/12", v0)
	}
	prev := v0
	for _, sigma := range []float64{0.5, 1, 2} {
		var sum, sq float64
		for i := -radius; i <= radius; i++ {
			w := math.Exp(-float64(i*i) / (2 * sigma * sigma))
			sum += w
			sq += w * w
		}
		want := math.Pow(sq/(sum*sum), 2)
		m, v := stats(float32(sigma))
		// The variance estimate of blurred noise over ~2700 correlated
		// pixels is good to a few percent; 15% separates the σ values.
		if ratio := v / v0; math.Abs(ratio-want) > 0.15*want {
			t.Errorf("σ=%v variance ratio %.4f, want %.4f ± 15%%", sigma, ratio, want)
		}
		if v >= prev {
			t.Errorf("σ=%v variance %v not below the smaller σ's %v", sigma, v, prev)
		}
		prev = v
		if math.Abs(m-m0) > 0.01 {
			t.Errorf("σ=%v moved the mean from %v to %v", sigma, m0, m)
		}
	}
}

func TestApplyNormaliseAndChannels(t *testing.T) {
	gray := randomImage(1, 8, 8, 5)
	v := plain(8, 3)
	v.Mean = []float32{0.5, 0.4, 0.3}
	v.Std = []float32{0.5, 0.25, 2}
	a, err := NewAugmenter(v)
	if err != nil {
		t.Fatal(err)
	}
	out := make([]float32, 3*64)
	a.Apply(out, gray, &Params{Crop: Box{0, 0, 8, 8}})
	for c := range 3 {
		for i := range 64 {
			want := (gray.Pix[i] - v.Mean[c]) / v.Std[c]
			if got := out[c*64+i]; math.Abs(float64(got-want)) > 1e-5 {
				t.Fatalf("channel %d pixel %d = %v, want %v", c, i, got, want)
			}
		}
	}
	rgb := randomImage(3, 8, 8, 6)
	a, _ = NewAugmenter(plain(8, 1))
	out = out[:64]
	a.Apply(out, rgb, &Params{Crop: Box{0, 0, 8, 8}})
	for i := range 64 {
		want := lumaR*rgb.Pix[i] + lumaG*rgb.Pix[64+i] + lumaB*rgb.Pix[128+i]
		if math.Abs(float64(out[i]-want)) > 1e-5 {
			t.Fatalf("gray pixel %d = %v, want luma %v", i, out[i], want)
		}
	}
}

func TestValidate(t *testing.T) {
	good, _ := Preset("imagenet")
	tests := []struct {
		name string
		edit func(*ViewConfig)
	}{
		{"size", func(v *ViewConfig) { v.Size = 0 }},
		{"scale above 1", func(v *ViewConfig) { v.Scale = [2]float64{0.5, 1.5} }},
		{"scale reversed", func(v *ViewConfig) { v.Scale = [2]float64{0.9, 0.1} }},
		{"ratio", func(v *ViewConfig) { v.Ratio = [2]float64{0, 1} }},
		{"probability", func(v *ViewConfig) { v.FlipP = 1.5 }},
		{"NaN probability", func(v *ViewConfig) { v.GrayP = math.NaN() }},
		{"hue", func(v *ViewConfig) { v.Hue = 0.6 }},
		{"sigma", func(v *ViewConfig) { v.Sigma = [2]float64{0, 2} }},
		{"std", func(v *ViewConfig) { v.Std = []float32{1, 0, 1} }},
		{"channels", func(v *ViewConfig) { v.Mean, v.Std = []float32{0, 0}, []float32{1, 1} }},
		{"center fraction", func(v *ViewConfig) { v.Crop, v.CenterFraction = CenterCrop, 0 }},
	}
	if err := good.A.Validate(); err != nil {
		t.Fatalf("imagenet preset: %v", err)
	}
	for _, tt := range tests {
		v := good.A
		tt.edit(&v)
		if _, err := NewAugmenter(v); err == nil {
			t.Errorf("%s: NewAugmenter accepted %+v", tt.name, v)
		}
	}
}

func TestPresets(t *testing.T) {
	for _, name := range PresetNames() {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		ev, err := EvalPreset(name)
		if err != nil {
			t.Fatal(err)
		}
		pr, err := ProbePreset(name)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range []ViewConfig{c.A, c.B, ev, pr} {
			if err := v.Validate(); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if c.A.SolarizeP != 0 || c.B.SolarizeP != 0.2 {
			t.Errorf("%s: solarize %v/%v, want 0/0.2", name, c.A.SolarizeP, c.B.SolarizeP)
		}
		if ev.FlipP+ev.JitterP+ev.GrayP+ev.BlurP+ev.SolarizeP != 0 || ev.Crop != CenterCrop {
			t.Errorf("%s: eval transform is random: %+v", name, ev)
		}
		if pr.FlipP != 0.5 || pr.JitterP+pr.GrayP+pr.BlurP+pr.SolarizeP != 0 || pr.Crop != RandomResizedCrop {
			t.Errorf("%s: probe transform is not crop + flip: %+v", name, pr)
		}
		c.A.Mean[0] = 99
		if again, _ := Preset(name); again.A.Mean[0] == 99 || c.B.Mean[0] == 99 {
			t.Errorf("%s: presets share their Mean slices", name)
		}
	}
	in, _ := Preset("imagenet")
	if in.A.Size != 224 || in.A.Filter != Bicubic || in.A.BlurP != 1 || in.B.BlurP != 0.1 || in.A.KernelSize() != 23 {
		t.Errorf("imagenet preset differs from the paper: %+v", in)
	}
	fm, _ := Preset("fashion-mnist")
	if fm.A.Size != 28 || fm.A.Channels() != 1 || fm.A.BlurP+fm.B.BlurP+fm.A.Saturation+fm.A.Hue+fm.A.GrayP != 0 {
		t.Errorf("fashion-mnist preset: %+v", fm)
	}
	ci, _ := Preset("cifar")
	if ci.A.Size != 32 || ci.A.BlurP+ci.B.BlurP != 0 || ci.A.Saturation != 0.2 {
		t.Errorf("cifar preset: %+v", ci)
	}
	if _, err := Preset("nope"); err == nil {
		t.Error("unknown preset accepted")
	}
}

// TestAugmentedImageStaysInRange: every pixel of a full random view, before
// normalisation, is a valid intensity (bicubic overshoot and jitter are
// clamped).
func TestAugmentedImageStaysInRange(t *testing.T) {
	c, _ := Preset("imagenet")
	v := c.B
	v.Size = 48
	v.Mean, v.Std = []float32{0, 0, 0}, []float32{1, 1, 1}
	a, _ := NewAugmenter(v)
	r := rand.New(rand.NewPCG(5, 5))
	src := randomImage(3, 60, 80, 3)
	out := make([]float32, 3*48*48)
	for range 50 {
		a.View(out, src, r)
		for i, x := range out {
			if !(x >= 0 && x <= 1) {
				t.Fatalf("pixel %d = %v outside [0, 1]", i, x)
			}
		}
	}
}
