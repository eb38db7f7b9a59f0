package pipeline

import (
	"bytes"
	"image"
	"image/jpeg"
	"math"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/disintegration/imaging"
)

// photo renders a w×h synthetic image (smooth gradients and edges, like the
// benchmark's) as an NRGBA, or as gray.
func photo(t testing.TB, w, h int, gray bool) image.Image {
	t.Helper()
	syn, err := NewSynthetic(SyntheticConfig{Count: 1, Size: max(w, h, 8), Channels: 3, Classes: 10, Seed: 7})
	must(t, err)
	var m Image
	must(t, syn.Load(0, &m))
	rgba := m.ToNRGBA().SubImage(image.Rect(0, 0, w, h))
	if !gray {
		return rgba
	}
	g := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			g.Set(x, y, rgba.At(x, y))
		}
	}
	return g
}

func encode(t testing.TB, m image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	must(t, jpeg.Encode(&b, m, &jpeg.Options{Quality: 90}))
	return b.Bytes()
}

// standard decodes data with the standard decoder and block means, the
// pure-Go path of decodeScaled.
func standard(t testing.TB, data []byte, denom int) *Image8 {
	t.Helper()
	img, err := jpeg.Decode(bytes.NewReader(data))
	must(t, err)
	var full, out Image8
	full.fromDecoded(img)
	if denom == 1 {
		return &full
	}
	full.reduce(&out, denom)
	return &out
}

// diff is the largest and the mean absolute difference in 8-bit levels.
func diff(a, b []uint8) (mx int, mean float64) {
	var sum int
	for i := range a {
		d := int(a[i]) - int(b[i])
		if d < 0 {
			d = -d
		}
		mx = max(mx, d)
		sum += d
	}
	return mx, float64(sum) / float64(len(a))
}

// TestDecodeScaled compares decodeScaled with the standard decoder followed
// by block means, at every scale, on odd sizes (partial blocks) in colour
// and gray. With libjpeg-turbo, full scale differs by IDCT and colour
// conversion rounding: at most 3 levels in colour, 1 in gray. Scaled
// decodes differ more: libjpeg's scaled inverse DCT is a truncated-spectrum
// low-pass, not a box mean, and its partial edge blocks see padded data, so
// the mean difference stays under 2.5 levels but single pixels at sharp
// edges differ by up to 40. The pure-Go build runs the reference itself and
// must match exactly.
func TestDecodeScaled(t *testing.T) {
	t.Logf("JPEG decoder: %s", JPEGDecoder)
	exact := JPEGDecoder == "image/jpeg"
	for _, sz := range [][2]int{{1, 1}, {17, 9}, {67, 45}, {130, 97}, {500, 375}} {
		for _, gray := range []bool{false, true} {
			data := encode(t, photo(t, sz[0], sz[1], gray))
			hdr, err := readHeader(data)
			must(t, err)
			for _, d := range Scales {
				var got, tmp Image8
				must(t, decodeScaled(data, hdr, d, &got, &tmp))
				want := standard(t, data, d)
				if got.C != 3 || got.W != (sz[0]+d-1)/d || got.H != (sz[1]+d-1)/d {
					t.Fatalf("%v 1/%d: %d×%d×%d, want %d×%d×3", sz, d, got.W, got.H, got.C, want.W, want.H)
				}
				mx, mean := diff(got.Pix, want.Pix)
				maxTol, meanTol := 40, 2.5
				switch {
				case exact:
					maxTol, meanTol = 0, 0
				case d == 1 && gray:
					maxTol = 1
				case d == 1:
					maxTol = 3
				}
				if mx > maxTol || mean > meanTol {
					t.Errorf("%v gray=%v 1/%d: differs from the standard decoder by up to %d levels, mean %.3f; want ≤ %d, ≤ %.1f", sz, gray, d, mx, mean, maxTol, meanTol)
				}
			}
		}
	}
}

func TestScaleFor(t *testing.T) {
	views := []ViewConfig{{Size: 100}, {Size: 100}}
	box := func(w, h float32) Params { return Params{Crop: Box{W: w, H: h}} }
	for _, tt := range []struct {
		name string
		a, b Params
		want int
	}{
		{"crops smaller than the output", box(50, 300), box(900, 900), 1},
		{"exactly the output", box(100, 100), box(100, 100), 1},
		{"just under twice", box(199.5, 400), box(400, 400), 1},
		{"twice", box(200, 400), box(400, 400), 2},
		{"the smaller view decides", box(400, 400), box(250, 900), 2},
		{"four times", box(400, 450), box(799, 800), 4},
		{"eight times and beyond", box(800, 5000), box(3000, 3000), 8},
	} {
		if got := scaleFor([]Params{tt.a, tt.b}, views); got != tt.want {
			t.Errorf("%s: scale 1/%d, want 1/%d", tt.name, got, tt.want)
		}
	}
}

// withOrientation inserts an EXIF APP1 segment with orientation o after the
// SOI marker of a JPEG, little-endian as most cameras write it.
func withOrientation(data []byte, o int) []byte {
	exif := []byte("Exif\x00\x00II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x03\x00\x01\x00\x00\x00")
	exif = append(exif, byte(o), 0, 0, 0, 0, 0, 0, 0)
	seg := []byte{0xff, 0xe1, byte((len(exif) + 2) >> 8), byte(len(exif) + 2)}
	out := append([]byte{}, data[:2]...)
	out = append(append(out, seg...), exif...)
	return append(out, data[2:]...)
}

// TestOrientation checks every EXIF orientation against imaging's
// AutoOrientation, which Folder.Load uses: same displayed size, same pixels
// up to decoder rounding (3 levels, as TestDecodeScaled).
func TestOrientation(t *testing.T) {
	base := encode(t, photo(t, 19, 11, false))
	for o := 1; o <= 8; o++ {
		data := withOrientation(base, o)
		hdr, err := readHeader(data)
		must(t, err)
		img, err := imaging.Decode(bytes.NewReader(data), imaging.AutoOrientation(true))
		must(t, err)
		var want, got, tmp Image8
		want.fromDecoded(img)
		if hdr.Orientation != o || hdr.W != want.W || hdr.H != want.H {
			t.Errorf("orientation %d: header says %d, %d×%d; imaging shows %d×%d", o, hdr.Orientation, hdr.W, hdr.H, want.W, want.H)
			continue
		}
		must(t, decodeScaled(data, hdr, 1, &got, &tmp))
		if mx, _ := diff(got.Pix, want.Pix); got.W != want.W || got.H != want.H || mx > 3 {
			t.Errorf("orientation %d: %d×%d differing by up to %d levels from imaging's %d×%d", o, got.W, got.H, mx, want.W, want.H)
		}
	}
}

// hidden hides a Folder's Encoded methods, so the loader takes the old path:
// decode at full resolution with Load, then draw.
type hidden struct{ Dataset }

// TestLoaderScaledDecode runs the loader over a folder of 900×700 JPEGs
// with 64 px views, so that crops decode at every scale, against the same
// loader decoding at full resolution through Load. The draws are the same
// (the indices and the flips, jitter and blur of each sample, which depend
// only on the seed); the pixels differ where a scaled decode replaced
// antialiased resizing from full resolution: the mean absolute difference of
// the normalised outputs stays under 0.02 (about one 8-bit level before
// normalisation by std ≈ 0.22, plus decoder rounding). A raw loader then
// hands out exactly these draws, and augmenting its images on the CPU gives
// exactly the batches.
func TestLoaderScaledDecode(t *testing.T) {
	root := t.TempDir()
	for i := range 6 {
		m := photo(t, 900, 700, i == 5)
		writeImage(t, filepath.Join(root, SyntheticClasses[i%2], strconv.Itoa(i)+".jpg"), encJPEG, m)
	}
	d, err := OpenFolder(root, FolderOptions{})
	must(t, err)
	aug := smallConfig()
	aug.A.Size, aug.B.Size = 64, 64
	cfg := LoaderConfig{BatchSize: 3, Workers: 2, Seed: 5, Shuffle: true, Epochs: 2}
	run := func(ds Dataset, cfg LoaderConfig) []Batch {
		l, err := NewLoader(ds, aug, cfg)
		must(t, err)
		defer l.Close()
		return collect(t, l, false)
	}
	got, want := run(d, cfg), run(hidden{d}, cfg)
	var sum, n float64
	for i := range got {
		if !slices.Equal(got[i].Index, want[i].Index) {
			t.Fatalf("batch %d: indices %v, want %v", i, got[i].Index, want[i].Index)
		}
		for _, p := range [][2][]float32{{got[i].A, want[i].A}, {got[i].B, want[i].B}} {
			for j := range p[0] {
				sum += math.Abs(float64(p[0][j] - p[1][j]))
			}
			n += float64(len(p[0]))
		}
	}
	mean := sum / n
	t.Logf("mean absolute difference from full-resolution decoding: %.4f", mean)
	if mean > 0.02 {
		t.Errorf("scaled decoding moves the normalised views by %.4f on average, want ≤ 0.02", mean)
	}

	cfg.Raw = true
	raw := run(d, cfg)
	scales := map[float32]bool{}
	for i, b := range raw {
		if b.A != nil || len(b.Images) != b.N || len(b.Params) != 2 {
			t.Fatalf("raw batch %d: A %v, %d images, %d views", i, b.A != nil, len(b.Images), len(b.Params))
		}
		sz := aug.A.Channels() * 64 * 64
		out := make([]float32, sz)
		for k := range b.N {
			var src Image
			b.Images[k].ToImage(&src, 3)
			scales[float32(900)/float32(src.W)] = true
			for v, a := range []*ViewConfig{&aug.A, &aug.B} {
				ag, err := NewAugmenter(*a)
				must(t, err)
				ag.Apply(out, &src, &b.Params[v][k])
				ref := got[i].A
				if v == 1 {
					ref = got[i].B
				}
				if !slices.Equal(out, ref[k*sz:(k+1)*sz]) {
					t.Fatalf("raw batch %d sample %d view %d differs from the augmenting loader's", i, k, v)
				}
			}
		}
	}
	if len(scales) < 2 {
		t.Errorf("decoded at scales %v of 900 px; the test wants several", scales)
	}
}
