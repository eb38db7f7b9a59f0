package pipeline

import (
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/go-gl/mathgl/mgl32"
)

// Box is a crop rectangle in continuous source-pixel coordinates: pixel
// (x, y) covers [x, x+1) × [y, y+1).
type Box struct {
	X, Y, W, H float32
}

// Filter selects the resampling kernel.
type Filter int

const (
	// Bilinear is the triangle kernel (torchvision's default interpolation).
	Bilinear Filter = iota
	// Bicubic is Keys' cubic with a = -0.5, the kernel PIL uses and the
	// official Barlow Twins crop asks for.
	Bicubic
)

func (f Filter) String() string {
	switch f {
	case Bilinear:
		return "bilinear"
	case Bicubic:
		return "bicubic"
	}
	return fmt.Sprintf("Filter(%d)", int(f))
}

func (f Filter) radius() float64 {
	if f == Bicubic {
		return 2
	}
	return 1
}

func (f Filter) weight(x float64) float64 {
	x = math.Abs(x)
	if f == Bicubic {
		const a = -0.5
		switch {
		case x < 1:
			return ((a+2)*x-(a+3))*x*x + 1
		case x < 2:
			return ((a*x-5*a)*x+8*a)*x - 4*a
		}
		return 0
	}
	if x < 1 {
		return 1 - x
	}
	return 0
}

// randomResizedCrop draws a crop box exactly as torchvision's
// RandomResizedCrop.get_params does (ten tries, then a central crop with the
// aspect ratio clamped), so the crop distribution matches the paper's.
func randomResizedCrop(r *rand.Rand, h, w int, scale, ratio [2]float64) Box {
	area := float64(h * w)
	logLo, logHi := math.Log(ratio[0]), math.Log(ratio[1])
	for range 10 {
		target := area * uniform(r, scale[0], scale[1])
		aspect := math.Exp(uniform(r, logLo, logHi))
		cw := int(math.Round(math.Sqrt(target * aspect)))
		ch := int(math.Round(math.Sqrt(target / aspect)))
		if cw > 0 && cw <= w && ch > 0 && ch <= h {
			y := r.IntN(h - ch + 1)
			x := r.IntN(w - cw + 1)
			return Box{float32(x), float32(y), float32(cw), float32(ch)}
		}
	}
	inRatio := float64(w) / float64(h)
	cw, ch := w, h
	switch {
	case inRatio < ratio[0]:
		ch = int(math.Round(float64(cw) / ratio[0]))
	case inRatio > ratio[1]:
		cw = int(math.Round(float64(ch) * ratio[1]))
	}
	return Box{float32((w - cw) / 2), float32((h - ch) / 2), float32(cw), float32(ch)}
}

// centerBox is Resize(short side) followed by CenterCrop expressed as one box
// in source coordinates: a square whose side is frac of the short side.
func centerBox(h, w int, frac float64) Box {
	side := float32(frac * float64(min(h, w)))
	return Box{(float32(w) - side) / 2, (float32(h) - side) / 2, side, side}
}

func uniform(r *rand.Rand, lo, hi float64) float64 {
	return lo + (hi-lo)*r.Float64()
}

// cropMatrix maps continuous output coordinates (pixel centres at k+0.5) of
// an outH×outW image to source coordinates: crop, scale and the optional
// horizontal flip composed into one affine transform, so the image is
// resampled once.
func cropMatrix(b Box, outH, outW int, flip bool) mgl32.Mat3 {
	m := mgl32.Translate2D(b.X, b.Y).Mul3(mgl32.Scale2D(b.W/float32(outW), b.H/float32(outH)))
	if flip {
		m = m.Mul3(mgl32.Translate2D(float32(outW), 0)).Mul3(mgl32.Scale2D(-1, 1))
	}
	return m
}

// Affine is the map from output pixel coordinates (centres at k+0.5) of a
// size×size view to source coordinates, per axis: x_src = ax·x + bx and
// y_src = ay·y + by, the crop, scale and flip of p exactly as Apply
// resamples them; the device path resamples with the same numbers.
func (p *Params) Affine(size int) (ax, bx, ay, by float32) {
	m := cropMatrix(p.Crop, size, size, p.Flipped)
	return m[0], m[6], m[4], m[7]
}

// taps holds one axis of a separable resampling: output k reads taps source
// samples starting at start[k] with weights w[k*taps:(k+1)*taps].
type taps struct {
	n, taps int
	start   []int
	w       []float32
}

// plan precomputes the kernel weights for one axis of the axis-aligned map
// src = a*out + b. Like PIL, the kernel is widened by the downscaling factor,
// which makes large downscales antialiased, and clipped at the image border
// with the weights renormalised.
func (t *taps) plan(a, b float32, nOut, nSrc int, f Filter) {
	scale := math.Abs(float64(a))
	support := f.radius() * max(scale, 1)
	inv := 1 / max(scale, 1)
	t.n = nOut
	t.taps = int(math.Ceil(support))*2 + 1
	if cap(t.start) < nOut {
		t.start = make([]int, nOut)
	}
	t.start = t.start[:nOut]
	if cap(t.w) < nOut*t.taps {
		t.w = make([]float32, nOut*t.taps)
	}
	t.w = t.w[:nOut*t.taps]
	used := 0
	for k := range nOut {
		c := float64(a)*(float64(k)+0.5) + float64(b)
		lo := max(int(math.Floor(c-support+0.5)), 0)
		hi := min(int(math.Ceil(c+support-0.5)), nSrc-1)
		if lo > hi { // centre outside the image: hold the nearest edge pixel
			lo = min(max(int(c), 0), nSrc-1)
			hi = lo
		}
		if hi-lo+1 > t.taps {
			hi = lo + t.taps - 1
		}
		ws := t.w[k*t.taps : (k+1)*t.taps]
		clear(ws)
		var sum float64
		for j := lo; j <= hi; j++ {
			v := f.weight((float64(j) + 0.5 - c) * inv)
			ws[j-lo] = float32(v)
			sum += v
		}
		if sum == 0 {
			ws[0], sum = 1, 1
		}
		for j := range ws {
			ws[j] = float32(float64(ws[j]) / sum)
		}
		t.start[k] = lo
		used = max(used, hi-lo+1)
	}
	// The bound above counts taps that always get weight 0 (two of the
	// three bilinear taps when upscaling); drop them from every output.
	if used < t.taps {
		for k := range nOut {
			copy(t.w[k*used:(k+1)*used], t.w[k*t.taps:k*t.taps+used])
		}
		t.taps, t.w = used, t.w[:nOut*used]
	}
}

// resampler keeps the per-axis plans and the intermediate buffer between
// calls so that a worker allocates nothing per image.
type resampler struct {
	x, y taps
	tmp  []float32
}

// warp writes the outC×outH×outW resampling of src through m into dst. m must
// be axis-aligned (crop, scale, flip), which lets the resampling run as two
// separable passes. Bicubic overshoot is clamped back to [0, 1] as PIL does
// when it stores 8-bit pixels.
func (rs *resampler) warp(dst []float32, src *Image, m mgl32.Mat3, outH, outW int, f Filter) {
	if m[1] != 0 || m[3] != 0 || m[2] != 0 || m[5] != 0 {
		panic("pipeline: warp needs an axis-aligned affine matrix")
	}
	rs.x.plan(m[0], m[6], outW, src.W, f)
	rs.y.plan(m[4], m[7], outH, src.H, f)
	// Only source rows the vertical kernel touches need the horizontal pass.
	y0, y1 := src.H, 0
	for k := range outH {
		y0 = min(y0, rs.y.start[k])
		y1 = max(y1, rs.y.start[k]+rs.y.taps)
	}
	y1 = min(y1, src.H)
	rows := y1 - y0
	if cap(rs.tmp) < rows*outW {
		rs.tmp = make([]float32, rows*outW)
	}
	tmp := rs.tmp[:rows*outW]
	xt, yt := &rs.x, &rs.y
	for c := range src.C {
		plane := src.Plane(c)
		for y := y0; y < y1; y++ {
			row := plane[y*src.W : (y+1)*src.W]
			out := tmp[(y-y0)*outW : (y-y0+1)*outW]
			for k := range outW {
				s := xt.start[k]
				ws := xt.w[k*xt.taps : (k+1)*xt.taps]
				n := min(len(ws), len(row)-s)
				var acc float32
				for j, v := range row[s : s+n] {
					acc += ws[j] * v
				}
				out[k] = acc
			}
		}
		dplane := dst[c*outH*outW : (c+1)*outH*outW]
		for k := range outH {
			out := dplane[k*outW : (k+1)*outW]
			clear(out)
			s := yt.start[k]
			ws := yt.w[k*yt.taps : (k+1)*yt.taps]
			for j, wv := range ws {
				if wv == 0 || s+j >= y1 {
					continue
				}
				in := tmp[(s+j-y0)*outW : (s+j-y0+1)*outW]
				for i, v := range in {
					out[i] += wv * v
				}
			}
			if f == Bicubic {
				for i, v := range out {
					out[i] = clamp01(v)
				}
			}
		}
	}
}
