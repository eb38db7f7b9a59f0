package pipeline

import (
	"image"
	"image/color"
)

// Image is a planar (CHW) float32 image with values in [0, 1]. Planar layout
// is what the batches use, so augmentations never reorder channels.
type Image struct {
	C, H, W int
	Pix     []float32 // len C*H*W; channel c, row y, column x at (c*H+y)*W+x
}

// Resize sets the image's shape, reusing Pix when it is large enough so that
// a worker can decode image after image into the same buffer.
func (m *Image) Resize(c, h, w int) {
	n := c * h * w
	if cap(m.Pix) < n {
		m.Pix = make([]float32, n)
	}
	m.Pix = m.Pix[:n]
	m.C, m.H, m.W = c, h, w
}

// Plane returns channel c as a slice of H*W values.
func (m *Image) Plane(c int) []float32 {
	n := m.H * m.W
	return m.Pix[c*n : (c+1)*n]
}

// ToNRGBA converts the image to 8-bit colour, mainly for looking at samples
// and augmentations; one channel becomes gray.
func (m *Image) ToNRGBA() *image.NRGBA {
	out := image.NewNRGBA(image.Rect(0, 0, m.W, m.H))
	to8 := func(v float32) uint8 { return uint8(clamp01(v)*255 + 0.5) }
	for y := 0; y < m.H; y++ {
		for x := 0; x < m.W; x++ {
			i := y*m.W + x
			var r, g, b uint8
			if m.C == 1 {
				r = to8(m.Pix[i])
				g, b = r, r
			} else {
				n := m.H * m.W
				r, g, b = to8(m.Pix[i]), to8(m.Pix[n+i]), to8(m.Pix[2*n+i])
			}
			out.SetNRGBA(x, y, color.NRGBA{r, g, b, 255})
		}
	}
	return out
}

// FromImage converts a decoded image into dst with c channels (1 or 3),
// taking fast paths for the types the standard decoders return; alpha is
// dropped, as PIL's convert("RGB") does.
func FromImage(dst *Image, src image.Image, c int) {
	b := src.Bounds()
	h, w := b.Dy(), b.Dx()
	dst.Resize(c, h, w)
	n := h * w
	const s = 1.0 / 255
	put := func(i int, r, g, bl uint8) {
		if c == 1 {
			dst.Pix[i] = (0.299*float32(r) + 0.587*float32(g) + 0.114*float32(bl)) * s
			return
		}
		dst.Pix[i] = float32(r) * s
		dst.Pix[n+i] = float32(g) * s
		dst.Pix[2*n+i] = float32(bl) * s
	}
	switch m := src.(type) {
	case *image.YCbCr:
		// The chroma column of every x is computed once per image, instead
		// of COffset's per-pixel switch on the subsampling ratio.
		div := map[image.YCbCrSubsampleRatio][2]int{
			image.YCbCrSubsampleRatio422: {2, 1}, image.YCbCrSubsampleRatio420: {2, 2},
			image.YCbCrSubsampleRatio440: {1, 2}, image.YCbCrSubsampleRatio411: {4, 1},
			image.YCbCrSubsampleRatio410: {4, 2},
		}[m.SubsampleRatio]
		dx, dy := max(div[0], 1), max(div[1], 1)
		cols := make([]int, w)
		for x := range cols {
			cols[x] = (b.Min.X+x)/dx - b.Min.X/dx
		}
		for y := 0; y < h; y++ {
			yrow := m.Y[y*m.YStride:][:w]
			crow := ((b.Min.Y+y)/dy - b.Min.Y/dy) * m.CStride
			cb, cr := m.Cb[crow:], m.Cr[crow:]
			for x, yy := range yrow {
				r, g, bl := color.YCbCrToRGB(yy, cb[cols[x]], cr[cols[x]])
				put(y*w+x, r, g, bl)
			}
		}
	case *image.Gray:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+w]
			for x, v := range row {
				put(y*w+x, v, v, v)
			}
		}
	case *image.NRGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := 0; x < w; x++ {
				put(y*w+x, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	case *image.RGBA:
		for y := 0; y < h; y++ {
			row := m.Pix[y*m.Stride : y*m.Stride+4*w]
			for x := 0; x < w; x++ {
				put(y*w+x, row[4*x], row[4*x+1], row[4*x+2])
			}
		}
	default:
		for y := 0; y < h; y++ {
			for x := 0; x < w; x++ {
				cc := color.NRGBAModel.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				put(y*w+x, cc.R, cc.G, cc.B)
			}
		}
	}
}

func clamp01(v float32) float32 {
	if v < 0 {
		return 0
	}
	if v > 1 {
		return 1
	}
	return v
}
