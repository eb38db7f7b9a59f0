package pipeline

import (
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/image/bmp"
	"golang.org/x/image/tiff"
)

// solid is a 6-wide, 4-high image of one colour.
func solid(c color.NRGBA) *image.NRGBA {
	m := image.NewNRGBA(image.Rect(0, 0, 6, 4))
	for y := range 4 {
		for x := range 6 {
			m.SetNRGBA(x, y, c)
		}
	}
	return m
}

func writeImage(t testing.TB, path string, enc func(io.Writer, image.Image) error, m image.Image) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(path), 0o755))
	f, err := os.Create(path)
	must(t, err)
	must(t, enc(f, m))
	must(t, f.Close())
}

var (
	encPNG  = png.Encode
	encBMP  = bmp.Encode
	encJPEG = func(w io.Writer, m image.Image) error { return jpeg.Encode(w, m, &jpeg.Options{Quality: 95}) }
	encGIF  = func(w io.Writer, m image.Image) error { return gif.Encode(w, m, nil) }
	encTIFF = func(w io.Writer, m image.Image) error { return tiff.Encode(w, m, nil) }
)

// makeTree writes root/cat/{a.png, b.jpg, sub/c.gif} and
// root/dog/{d.bmp, e.tiff, notes.txt} plus a hidden folder, and returns root.
func makeTree(t testing.TB) string {
	root := t.TempDir()
	red := solid(color.NRGBA{255, 0, 0, 255})
	writeImage(t, filepath.Join(root, "cat", "a.png"), encPNG, red)
	writeImage(t, filepath.Join(root, "cat", "b.jpg"), encJPEG, red)
	writeImage(t, filepath.Join(root, "cat", "sub", "c.gif"), encGIF, red)
	writeImage(t, filepath.Join(root, "dog", "d.bmp"), encBMP, solid(color.NRGBA{0, 0, 255, 255}))
	writeImage(t, filepath.Join(root, "dog", "e.tiff"), encTIFF, solid(color.NRGBA{0, 0, 255, 255}))
	must(t, os.WriteFile(filepath.Join(root, "dog", "notes.txt"), []byte("not an image"), 0o644))
	writeImage(t, filepath.Join(root, ".cache", "x.png"), encPNG, red)
	must(t, os.WriteFile(filepath.Join(root, "cat", "._a.png"), []byte("AppleDouble"), 0o644))
	return root
}

func TestOpenFolder(t *testing.T) {
	root := makeTree(t)
	d, err := OpenFolder(root, FolderOptions{})
	must(t, err)
	if d.Len() != 5 || d.NumClasses() != 2 || d.ClassNames()[0] != "cat" || d.ClassNames()[1] != "dog" || d.Channels() != 3 {
		t.Fatalf("%d images, classes %v", d.Len(), d.ClassNames())
	}
	if h, w := d.Size(); h != 0 || w != 0 {
		t.Errorf("Size %d×%d, want 0×0 for varying sizes", h, w)
	}
	var m Image
	for i := range d.Len() {
		must(t, d.Load(i, &m))
		blue := d.Label(i) == 1
		if wantLabel := strings.Contains(d.Path(i), "dog"); blue != wantLabel {
			t.Errorf("%s has label %d", d.Path(i), d.Label(i))
		}
		if m.C != 3 || m.H != 4 || m.W != 6 {
			t.Fatalf("%s: shape %d×%d×%d, want 3×4×6", d.Path(i), m.C, m.H, m.W)
		}
		// JPEG is lossy and chroma-subsampled; the others are exact.
		tol := float32(1e-6)
		if strings.HasSuffix(d.Path(i), ".jpg") {
			tol = 0.05
		}
		want := [3]float32{1, 0, 0}
		if blue {
			want = [3]float32{0, 0, 1}
		}
		for c := range 3 {
			if v := m.Pix[c*24+13]; v-want[c] > tol || want[c]-v > tol {
				t.Errorf("%s channel %d = %v, want %v", d.Path(i), c, v, want[c])
			}
		}
	}
	g, err := OpenFolder(root, FolderOptions{Channels: 1})
	must(t, err)
	must(t, g.Load(0, &m))
	if m.C != 1 || !near(m.Pix[0], lumaR) {
		t.Errorf("gray red = %v (%d channels), want %v", m.Pix[0], m.C, lumaR)
	}
	u, err := OpenFolder(root, FolderOptions{Unlabeled: true})
	must(t, err)
	if u.Len() != 5 || u.NumClasses() != 0 || u.Label(0) != -1 {
		t.Errorf("unlabeled: %d images, %d classes, label %d; want 5 (no hidden files), 0, -1", u.Len(), u.NumClasses(), u.Label(0))
	}
}

func TestFolderFileList(t *testing.T) {
	root := makeTree(t)
	writeImage(t, filepath.Join(root, "n01440764", "n01440764_10026.JPEG"), encJPEG, solid(color.NRGBA{0, 255, 0, 255}))
	list := filepath.Join(t.TempDir(), "1percent.txt")
	must(t, os.WriteFile(list, []byte("# subset\ndog/e.tiff\n\nn01440764_10026.JPEG\ncat/a.png\n"), 0o644))
	d, err := OpenFolder(root, FolderOptions{FileList: list})
	must(t, err)
	if d.Len() != 3 || d.NumClasses() != 3 {
		t.Fatalf("%d images, %d classes; want 3 of 3", d.Len(), d.NumClasses())
	}
	for i, want := range []int{1, 2, 0} {
		if d.Label(i) != want {
			t.Errorf("image %d (%s) label %d, want %d", i, d.Path(i), d.Label(i), want)
		}
	}
	for _, tt := range []struct{ name, list, want string }{
		{"missing file", "cat/a.png\ncat/zzz.png\n", "1percent.txt:2"},
		{"outside the classes", "top.png\n", "in no class folder"},
		{"empty list", "# nothing\n", "names no images"},
	} {
		must(t, os.WriteFile(list, []byte(tt.list), 0o644))
		writeImage(t, filepath.Join(root, "top.png"), encPNG, solid(color.NRGBA{}))
		if _, err := OpenFolder(root, FolderOptions{FileList: list}); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
}

func TestFolderErrors(t *testing.T) {
	empty := t.TempDir()
	noImages := t.TempDir()
	must(t, os.MkdirAll(filepath.Join(noImages, "cat"), 0o755))
	must(t, os.WriteFile(filepath.Join(noImages, "cat", "readme.md"), nil, 0o644))
	file := filepath.Join(t.TempDir(), "f")
	must(t, os.WriteFile(file, nil, 0o644))
	tests := []struct {
		name string
		root string
		opts FolderOptions
		want string
	}{
		{"missing", filepath.Join(empty, "nope"), FolderOptions{}, "no such file"},
		{"not a directory", file, FolderOptions{}, "not a directory"},
		{"no class folders", empty, FolderOptions{}, "no class subfolders"},
		{"class without images", noImages, FolderOptions{}, filepath.Join(noImages, "cat")},
		{"unlabeled without images", noImages, FolderOptions{Unlabeled: true}, "no images"},
		{"channels", noImages, FolderOptions{Channels: 2}, "Channels"},
	}
	for _, tt := range tests {
		if _, err := OpenFolder(tt.root, tt.opts); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want one containing %q", tt.name, err, tt.want)
		}
	}
	if _, err := Open("folder", "", "train"); err == nil {
		t.Error("folder without a directory opened")
	}
	if _, err := Open("folder", makeTree(t), "test"); err == nil || !strings.Contains(err.Error(), "no test or val") {
		t.Errorf("missing test split: %v", err)
	}
}

func TestFolderCorruptFiles(t *testing.T) {
	root := makeTree(t)
	bad := filepath.Join(root, "cat", "broken.jpg")
	must(t, os.WriteFile(bad, []byte("\xff\xd8\xff\xe0 this is not really a JPEG"), 0o644))
	d, err := Open("folder", root, "train")
	must(t, err)
	aug, _ := Preset("cifar")
	l, err := NewLoader(d, aug, LoaderConfig{BatchSize: 3, Workers: 2, Shuffle: true, Epochs: 2})
	must(t, err)
	n := 0
	for {
		b, err := l.Next()
		if err == io.EOF {
			break
		}
		must(t, err)
		n += b.N
	}
	l.Close()
	skipped := l.Skipped()
	if n != 12 || len(skipped) != 1 || !strings.Contains(skipped[0].Err.Error(), bad) {
		t.Fatalf("%d samples, skipped %v; want 12 samples and %s reported", n, skipped, bad)
	}
	l, _ = NewLoader(d, aug, LoaderConfig{BatchSize: 3, Workers: 2, Epochs: 1, Strict: true})
	defer l.Close()
	for err == nil {
		_, err = l.Next()
	}
	if !strings.Contains(err.Error(), bad) {
		t.Errorf("strict: %v, want an error naming %s", err, bad)
	}
}

func TestOpen(t *testing.T) {
	d, err := Open("synthetic", "", "train")
	must(t, err)
	te, err := Open("synthetic", "", "test")
	must(t, err)
	var a, b Image
	must(t, d.Load(0, &a))
	must(t, te.Load(0, &b))
	if te.Len() >= d.Len() || near(a.Pix[0], b.Pix[0]) && near(a.Pix[100], b.Pix[100]) {
		t.Error("synthetic test split is not a separate, smaller set")
	}
	for _, tt := range []struct{ name, split string }{{"imagenet21k", "train"}, {"synthetic", "val"}} {
		if _, err := Open(tt.name, "", tt.split); err == nil {
			t.Errorf("Open(%q, %q) succeeded", tt.name, tt.split)
		}
	}
	if _, err := Open("cifar10", t.TempDir(), "train"); err == nil || !strings.Contains(err.Error(), "data_batch_1.bin") {
		t.Errorf("cifar10 in an empty dir: %v", err)
	}
}
