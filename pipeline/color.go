package pipeline

import "math"

// Luma weights of ITU-R 601-2, the ones PIL and torchvision use for
// grayscale, contrast and saturation.
const (
	lumaR = 0.299
	lumaG = 0.587
	lumaB = 0.114
)

// The colour operations work in place on planar pixels with c channels of n
// values each, clamping to [0, 1] after every step as the 8-bit PIL pipeline
// the paper used does implicitly.

func brightness(p []float32, f float32) {
	for i, v := range p {
		p[i] = clamp01(v * f)
	}
}

// contrast blends towards the mean luma of the whole image.
func contrast(p []float32, c, n int, f float32) {
	var sum float64
	if c == 1 {
		for _, v := range p {
			sum += float64(v)
		}
	} else {
		r, g, b := p[:n], p[n:2*n], p[2*n:3*n]
		for i := range n {
			sum += float64(lumaR*r[i] + lumaG*g[i] + lumaB*b[i])
		}
	}
	mean := float32(sum/float64(n)) * (1 - f)
	for i, v := range p {
		p[i] = clamp01(f*v + mean)
	}
}

// saturation blends each pixel towards its own luma; gray images have none.
func saturation(p []float32, c, n int, f float32) {
	if c != 3 {
		return
	}
	r, g, b := p[:n], p[n:2*n], p[2*n:3*n]
	for i := range n {
		l := (lumaR*r[i] + lumaG*g[i] + lumaB*b[i]) * (1 - f)
		r[i] = clamp01(f*r[i] + l)
		g[i] = clamp01(f*g[i] + l)
		b[i] = clamp01(f*b[i] + l)
	}
}

// hueShift rotates hue by h turns in HSV space; imaging has no hue
// operation, so this is the direct loop of torchvision's float path.
func hueShift(p []float32, c, n int, h float32) {
	if c != 3 || h == 0 {
		return
	}
	r, g, b := p[:n], p[n:2*n], p[2*n:3*n]
	for i := range n {
		hh, s, v := rgbToHSV(r[i], g[i], b[i])
		hh += h
		hh -= float32(math.Floor(float64(hh)))
		r[i], g[i], b[i] = hsvToRGB(hh, s, v)
	}
}

func rgbToHSV(r, g, b float32) (h, s, v float32) {
	mx := max(r, g, b)
	mn := min(r, g, b)
	v = mx
	d := mx - mn
	if d == 0 {
		return 0, 0, v
	}
	s = d / mx
	switch mx {
	case r:
		h = (g - b) / d
	case g:
		h = 2 + (b-r)/d
	default:
		h = 4 + (r-g)/d
	}
	h /= 6
	if h < 0 {
		h++
	}
	return h, s, v
}

func hsvToRGB(h, s, v float32) (r, g, b float32) {
	h6 := h * 6
	sector := int(h6)
	f := h6 - float32(sector)
	p := v * (1 - s)
	q := v * (1 - s*f)
	t := v * (1 - s*(1-f))
	switch sector % 6 {
	case 0:
		return v, t, p
	case 1:
		return q, v, p
	case 2:
		return p, v, t
	case 3:
		return p, q, v
	case 4:
		return t, p, v
	}
	return v, p, q
}

// grayscale replaces all three channels with the luma, keeping three
// channels as torchvision's RandomGrayscale does.
func grayscale(p []float32, c, n int) {
	if c != 3 {
		return
	}
	r, g, b := p[:n], p[n:2*n], p[2*n:3*n]
	for i := range n {
		l := lumaR*r[i] + lumaG*g[i] + lumaB*b[i]
		r[i], g[i], b[i] = l, l, l
	}
}

func solarize(p []float32, threshold float32) {
	for i, v := range p {
		if v >= threshold {
			p[i] = 1 - v
		}
	}
}

// blurrer keeps the kernel and row buffers of a separable Gaussian blur.
type blurrer struct {
	k   []float32
	pad []float32
	tmp []float32
}

// blur convolves each h×w plane with a Gaussian of the given σ and kernel
// size (odd), using reflect padding as torchvision's GaussianBlur does.
// Taps beyond 4σ are dropped: their total weight is below 1e-4, far under
// 8-bit precision, and for the usual σ ≈ 1 this halves the kernel.
func (bl *blurrer) blur(p []float32, c, h, w, size int, sigma float32) {
	k := BlurKernel(bl.k[:0], h, w, size, sigma)
	bl.k = k
	radius := len(k) / 2
	if radius <= 0 {
		return
	}
	n := h * w
	if cap(bl.tmp) < n {
		bl.tmp = make([]float32, n)
	}
	if cap(bl.pad) < w+2*radius {
		bl.pad = make([]float32, w+2*radius)
	}
	tmp, pad := bl.tmp[:n], bl.pad[:w+2*radius]
	for ch := range c {
		plane := p[ch*n : (ch+1)*n]
		// Horizontal pass: reflect-pad the row once, then every tap is a
		// shifted multiply-add over contiguous memory.
		for y := range h {
			row := plane[y*w : (y+1)*w]
			copy(pad[radius:], row)
			for i := 1; i <= radius; i++ {
				pad[radius-i] = row[i]
				pad[radius+w-1+i] = row[w-1-i]
			}
			out := tmp[y*w : (y+1)*w]
			clear(out)
			for j, kv := range k {
				for x, v := range pad[j : j+w] {
					out[x] += kv * v
				}
			}
		}
		for y := range h {
			out := plane[y*w : (y+1)*w]
			clear(out)
			for j, kv := range k {
				in := tmp[reflect(y+j-radius, h)*w:][:w]
				for x, v := range in {
					out[x] += kv * v
				}
			}
		}
	}
}

// BlurKernel appends to dst the normalised weights of the Gaussian blur
// that Apply uses on an h×w image for the kernel size (odd) and σ: 2r+1
// taps with r = min(size/2, ⌈4σ⌉, h−1, w−1), none when r is 0. The device
// path uploads these very weights, so both paths blur alike.
func BlurKernel(dst []float32, h, w, size int, sigma float32) []float32 {
	radius := min(size/2, int(math.Ceil(4*float64(sigma))), h-1, w-1)
	if radius <= 0 {
		return dst
	}
	k := dst
	var sum float32
	for i := -radius; i <= radius; i++ {
		v := float32(math.Exp(-float64(i*i) / (2 * float64(sigma) * float64(sigma))))
		k = append(k, v)
		sum += v
	}
	for i := range k {
		k[i] /= sum
	}
	return k
}

// reflect mirrors an index into [0, n) without repeating the edge pixel
// (PyTorch's "reflect" padding); radius < n keeps one reflection enough.
func reflect(i, n int) int {
	if i < 0 {
		return -i
	}
	if i >= n {
		return 2*(n-1) - i
	}
	return i
}
