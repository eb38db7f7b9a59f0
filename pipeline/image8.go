package pipeline

import (
	"image"
	"image/color"
)

// Image8 is a decoded 8-bit image with interleaved channels (HWC), the
// layout JPEG decoders write. The loader keeps images in this form until
// augmentation: a quarter of float32's bytes, and what the device path
// uploads as it is.
type Image8 struct {
	C, H, W int
	Pix     []uint8 // len C*H*W; row y, column x, channel c at (y*W+x)*C+c
}

// Resize sets the shape, reusing Pix when it is large enough.
func (m *Image8) Resize(c, h, w int) {
	n := c * h * w
	if cap(m.Pix) < n {
		m.Pix = make([]uint8, n)
	}
	m.Pix = m.Pix[:n]
	m.C, m.H, m.W = c, h, w
}

// ToImage converts m into dst as planar float32 in [0, 1] with c channels
// (1 or 3); RGB to gray uses the same luma as FromImage, so a folder gives
// the same pixels through Load and through this path.
func (m *Image8) ToImage(dst *Image, c int) {
	dst.Resize(c, m.H, m.W)
	n := m.H * m.W
	const s = 1.0 / 255
	switch {
	case m.C == 3 && c == 3:
		r, g, b := dst.Pix[:n], dst.Pix[n:2*n], dst.Pix[2*n:3*n]
		for i := range n {
			px := m.Pix[3*i : 3*i+3 : 3*i+3]
			r[i], g[i], b[i] = float32(px[0])*s, float32(px[1])*s, float32(px[2])*s
		}
	case m.C == 3:
		for i := range n {
			px := m.Pix[3*i : 3*i+3 : 3*i+3]
			dst.Pix[i] = (0.299*float32(px[0]) + 0.587*float32(px[1]) + 0.114*float32(px[2])) * s
		}
	default:
		for ch := range c {
			plane := dst.Pix[ch*n : (ch+1)*n]
			for i, v := range m.Pix[:n] {
				plane[i] = float32(v) * s
			}
		}
	}
}

// fromDecoded converts what the standard decoders return into 8-bit RGB,
// with the same colour conversion as FromImage (nearest chroma sample, as
// image/jpeg's YCbCr type defines it).
func (m *Image8) fromDecoded(src image.Image) {
	b := src.Bounds()
	h, w := b.Dy(), b.Dx()
	m.Resize(3, h, w)
	switch s := src.(type) {
	case *image.YCbCr:
		for y := range h {
			out := m.Pix[y*w*3 : (y+1)*w*3]
			for x := range w {
				yi := s.YOffset(b.Min.X+x, b.Min.Y+y)
				ci := s.COffset(b.Min.X+x, b.Min.Y+y)
				out[3*x], out[3*x+1], out[3*x+2] = color.YCbCrToRGB(s.Y[yi], s.Cb[ci], s.Cr[ci])
			}
		}
	case *image.Gray:
		for y := range h {
			row := s.Pix[y*s.Stride : y*s.Stride+w]
			out := m.Pix[y*w*3 : (y+1)*w*3]
			for x, v := range row {
				out[3*x], out[3*x+1], out[3*x+2] = v, v, v
			}
		}
	default:
		for y := range h {
			out := m.Pix[y*w*3 : (y+1)*w*3]
			for x := range w {
				c := color.NRGBAModel.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
				out[3*x], out[3*x+1], out[3*x+2] = c.R, c.G, c.B
			}
		}
	}
}

// reduce shrinks m by denom in each direction, averaging each denom×denom
// block (the blocks of the last row and column may be partial), into dst.
// The output size is libjpeg's for scaled decoding, ceil(size/denom), and a
// block mean is what libjpeg's 1/8 scaling computes exactly (the DC
// coefficient) and its 1/2 and 1/4 scaling approximate, which keeps the
// pure-Go decoder's scaled images within decoder rounding of libjpeg-turbo's.
func (m *Image8) reduce(dst *Image8, denom int) {
	c := m.C
	h, w := (m.H+denom-1)/denom, (m.W+denom-1)/denom
	dst.Resize(c, h, w)
	var acc [3]int
	for y := range h {
		y0, y1 := y*denom, min((y+1)*denom, m.H)
		for x := range w {
			x0, x1 := x*denom, min((x+1)*denom, m.W)
			acc = [3]int{}
			for yy := y0; yy < y1; yy++ {
				row := m.Pix[(yy*m.W+x0)*c : (yy*m.W+x1)*c]
				for i, v := range row {
					acc[i%c] += int(v)
				}
			}
			n := (y1 - y0) * (x1 - x0)
			for ch := range c {
				dst.Pix[(y*w+x)*c+ch] = uint8((acc[ch] + n/2) / n)
			}
		}
	}
}

// orient applies an EXIF orientation (2–8; 1 is the identity) to src into
// dst, as photo viewers and imaging.AutoOrientation do. Orientations 5–8
// swap height and width.
func (m *Image8) orient(dst *Image8, o int) {
	h, w := m.H, m.W
	if o >= 5 {
		h, w = w, h
	}
	c := m.C
	dst.Resize(c, h, w)
	for y := range h {
		for x := range w {
			// (sx, sy) is the stored pixel shown at (x, y).
			var sx, sy int
			switch o {
			case 2:
				sx, sy = m.W-1-x, y
			case 3:
				sx, sy = m.W-1-x, m.H-1-y
			case 4:
				sx, sy = x, m.H-1-y
			case 5:
				sx, sy = y, x
			case 6:
				sx, sy = y, m.H-1-x
			case 7:
				sx, sy = m.W-1-y, m.H-1-x
			case 8:
				sx, sy = m.W-1-y, x
			default:
				sx, sy = x, y
			}
			copy(dst.Pix[(y*w+x)*c:(y*w+x+1)*c], m.Pix[(sy*m.W+sx)*c:(sy*m.W+sx+1)*c])
		}
	}
}

// FromImage quantises a float image in [0, 1] to 8 bits, for a raw loader
// over a dataset that is not a folder of files; CIFAR and IDX pixels, which
// are k/255, come back exactly.
func (m *Image8) FromImage(src *Image) {
	c := src.C
	m.Resize(c, src.H, src.W)
	for ch := range c {
		for i, v := range src.Plane(ch) {
			m.Pix[i*c+ch] = uint8(clamp01(v)*255 + 0.5)
		}
	}
}

// toGray turns an RGB image into one channel of luma in place, rounded to
// 8 bits: the raw loader's form of a one-channel folder.
func (m *Image8) toGray() {
	if m.C != 3 {
		return
	}
	n := m.H * m.W
	for i := range n {
		px := m.Pix[3*i : 3*i+3 : 3*i+3]
		m.Pix[i] = uint8(0.299*float32(px[0]) + 0.587*float32(px[1]) + 0.114*float32(px[2]) + 0.5)
	}
	m.Pix, m.C = m.Pix[:n], 1
}
