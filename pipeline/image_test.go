package pipeline

import (
	"image"
	"image/color"
	"math/rand/v2"
	"testing"
)

// TestFromImage compares the fast paths with the generic colour model
// conversion, on sub-images with odd offsets so that chroma indexing is
// exercised away from the origin.
func TestFromImage(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 1))
	fill := func(b []byte) {
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
	}
	var imgs []image.Image
	for _, ratio := range []image.YCbCrSubsampleRatio{
		image.YCbCrSubsampleRatio444, image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio420,
		image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio411, image.YCbCrSubsampleRatio410,
	} {
		m := image.NewYCbCr(image.Rect(-3, 2, 14, 13), ratio)
		fill(m.Y)
		fill(m.Cb)
		fill(m.Cr)
		imgs = append(imgs, m, m.SubImage(image.Rect(1, 5, 12, 12)))
	}
	g := image.NewGray(image.Rect(1, 1, 9, 6))
	fill(g.Pix)
	n := image.NewNRGBA(image.Rect(0, 0, 7, 5))
	fill(n.Pix)
	rgba := image.NewRGBA(image.Rect(0, 0, 7, 5))
	for i := range rgba.Pix {
		rgba.Pix[i] = 255 // opaque, so premultiplied equals straight
	}
	pal := image.NewPaletted(image.Rect(0, 0, 4, 4), color.Palette{color.Black, color.White, color.NRGBA{10, 200, 30, 255}})
	fill(pal.Pix)
	for i := range pal.Pix {
		pal.Pix[i] %= 3
	}
	imgs = append(imgs, g, g.SubImage(image.Rect(2, 2, 8, 5)), n, n.SubImage(image.Rect(1, 1, 6, 4)), rgba, pal)
	for k, src := range imgs {
		for _, ch := range []int{3, 1} {
			var m Image
			FromImage(&m, src, ch)
			b := src.Bounds()
			if m.C != ch || m.H != b.Dy() || m.W != b.Dx() {
				t.Fatalf("image %d: shape %d×%d×%d", k, m.C, m.H, m.W)
			}
			for y := 0; y < m.H; y++ {
				for x := 0; x < m.W; x++ {
					c := color.NRGBAModel.Convert(src.At(b.Min.X+x, b.Min.Y+y)).(color.NRGBA)
					want := [3]float32{float32(c.R) / 255, float32(c.G) / 255, float32(c.B) / 255}
					if ch == 1 {
						want[0] = lumaR*want[0] + lumaG*want[1] + lumaB*want[2]
					}
					for cc := range ch {
						if got := m.Pix[(cc*m.H+y)*m.W+x]; !near(got, want[cc]) && (got-want[cc] > 1e-5 || want[cc]-got > 1e-5) {
							t.Fatalf("image %d (%T) channels %d: (%d,%d,%d) = %v, want %v", k, src, ch, cc, y, x, got, want[cc])
						}
					}
				}
			}
		}
	}
}
