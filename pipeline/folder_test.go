package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"slices"
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
		{"missing", filepath.Join(empty, "nope"), FolderOptions{}, filepath.Join(empty, "nope")},
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
	if _, err := OpenFolder(filepath.Join(empty, "nope"), FolderOptions{}); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing: error %v, want one wrapping fs.ErrNotExist", err)
	}
	if _, err := Open("folder", "", "train"); err == nil {
		t.Error("folder without a directory opened")
	}
	if _, err := Open("folder", makeTree(t), "test"); err == nil || !strings.Contains(err.Error(), "no test or val") {
		t.Errorf("missing test split: %v", err)
	}
}

// pngHeader is a PNG that declares w×h 8-bit gray pixels and ends after its
// header: a header check can refuse it, while decoding it fails for want of
// pixel data, before allocating any.
func pngHeader(w, h uint32) []byte {
	b := []byte("\x89PNG\r\n\x1a\n")
	chunk := func(typ string, data []byte) {
		b = binary.BigEndian.AppendUint32(b, uint32(len(data)))
		b = append(append(b, typ...), data...)
		b = binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	}
	ihdr := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, w), h)
	chunk("IHDR", append(ihdr, 8, 0, 0, 0, 0)) // 8-bit gray, deflate, no interlace
	chunk("IEND", nil)
	return b
}

// badFolder writes a flat folder of 8 good images and 4 bad ones and returns
// its root and the bad files' paths by dataset (lexical) index.
func badFolder(t *testing.T) (string, map[int]string) {
	root := t.TempDir()
	red := solid(color.NRGBA{255, 0, 0, 255})
	for _, f := range []struct {
		name string
		enc  func(io.Writer, image.Image) error
	}{{"a.png", encPNG}, {"b.jpg", encJPEG}, {"d.png", encPNG}, {"f.gif", encGIF}, {"g.png", encPNG}, {"i.jpg", encJPEG}, {"j.bmp", encBMP}, {"k.png", encPNG}} {
		writeImage(t, filepath.Join(root, f.name), f.enc, red)
	}
	noise := image.NewGray(image.Rect(0, 0, 64, 64))
	for i := range noise.Pix {
		noise.Pix[i] = uint8(i * 7919 >> 3)
	}
	var jpg bytes.Buffer
	must(t, encJPEG(&jpg, noise))
	bad := map[int]string{
		2:  filepath.Join(root, "c-truncated.jpg"),
		4:  filepath.Join(root, "e-empty.png"),
		7:  filepath.Join(root, "h-huge.png"),
		11: filepath.Join(root, "x.jpg"),
	}
	must(t, os.WriteFile(bad[2], jpg.Bytes()[:jpg.Len()/2], 0o644))
	must(t, os.WriteFile(bad[4], nil, 0o644))
	must(t, os.WriteFile(bad[7], pngHeader(20000, 20000), 0o644))
	must(t, os.WriteFile(bad[11], []byte("not a JPEG, whatever the name says\n"), 0o644))
	return root, bad
}

func TestFolderBadFiles(t *testing.T) {
	root, bad := badFolder(t)
	d, err := OpenFolder(root, FolderOptions{Unlabeled: true})
	must(t, err)
	if d.Len() != 12 {
		t.Fatalf("%d images, want 12", d.Len())
	}
	var img Image
	for i, want := range map[int]string{
		2:  "decoding the jpeg image: ", // the header is intact; the reason is the decoder's
		4:  "empty file (0 bytes)",
		7:  "png image of 20000×20000 = 400000000 pixels, above the limit of 89478485 pixels (FolderOptions.MaxPixels)",
		11: "reading the image header: image: unknown format",
	} {
		err := d.Load(i, &img)
		if err == nil || !strings.HasPrefix(err.Error(), "pipeline: "+bad[i]+": "+want) {
			t.Errorf("Load(%d): %v, want pipeline: %s: %s…", i, err, bad[i], want)
		}
		if got := loaderErr(t, bad[i], FolderOptions{}); err != nil && got != err.Error() {
			t.Errorf("loader on %s: %q, want Load's %q", bad[i], got, err)
		}
	}
}

// loaderErr copies file alone into a new folder and returns the error of an
// evaluation loader over it, with the copy's path put back to file's, or ""
// if the image loads. The loader reads a folder through its Encoded methods
// and decodeScaled, not Load, so this checks that path judges files as Load
// does.
func loaderErr(t *testing.T, file string, opts FolderOptions) string {
	t.Helper()
	data, err := os.ReadFile(file)
	must(t, err)
	cp := filepath.Join(t.TempDir(), filepath.Base(file))
	must(t, os.WriteFile(cp, data, 0o644))
	opts.Unlabeled = true
	d, err := OpenFolder(filepath.Dir(cp), opts)
	must(t, err)
	aug, _ := Preset("cifar")
	l, err := NewEvalLoader(d, aug.A, LoaderConfig{BatchSize: 1, Workers: 1, Epochs: 1})
	must(t, err)
	defer l.Close()
	if _, err := l.Next(); err != nil {
		return strings.ReplaceAll(err.Error(), cp, file)
	}
	return ""
}

func TestLoaderOnBadFiles(t *testing.T) {
	root, bad := badFolder(t)
	d, err := OpenFolder(root, FolderOptions{Unlabeled: true})
	must(t, err)
	aug, _ := Preset("cifar")
	tests := []struct {
		name string
		eval bool
		cfg  LoaderConfig
		// stop: the error ends the run at the first bad image visited
		// (errAt < 0), or at batch errAt with this message.
		errAt int
		err   string
	}{
		{name: "default", cfg: LoaderConfig{BatchSize: 2, Workers: 3, Epochs: 1}, errAt: -1},
		{name: "default, shuffled", cfg: LoaderConfig{BatchSize: 2, Workers: 3, Seed: 7, Shuffle: true, Epochs: 1}, errAt: -1},
		{name: "eval", eval: true, cfg: LoaderConfig{BatchSize: 5, Workers: 2, Epochs: 1}, errAt: -1},
		{name: "skip", cfg: LoaderConfig{BatchSize: 2, Workers: 3, Seed: 7, Shuffle: true, Epochs: 2, SkipBad: true, MaxBadFraction: 0.5}, errAt: 12},
		{name: "skip, eval", eval: true, cfg: LoaderConfig{BatchSize: 5, Workers: 2, Epochs: 1, SkipBad: true, MaxBadFraction: 0.5}, errAt: 3},
		// The 4th bad image, in batch 5, is more than a quarter of 12.
		{name: "skip, above MaxBadFraction", cfg: LoaderConfig{BatchSize: 2, Workers: 3, Epochs: 1, SkipBad: true, MaxBadFraction: 0.25}, errAt: 5,
			err: "pipeline: 4 of the 12 images tried so far failed to load, more than MaxBadFraction 0.25 of 12 images allows (3); the first: pipeline: " + bad[2]},
		// The default 0.01 of a 12-image folder allows none.
		{name: "skip, default MaxBadFraction", cfg: LoaderConfig{BatchSize: 2, Workers: 3, Epochs: 1, SkipBad: true}, errAt: 1,
			err: "pipeline: 1 of the 4 images tried so far failed to load, more than MaxBadFraction 0.01 of 12 images allows (0); the first: pipeline: " + bad[2]},
	}
	for _, tt := range tests {
		var reported []Skip
		tt.cfg.OnSkip = func(s Skip) { reported = append(reported, s) }
		var l *Loader
		if tt.eval {
			l, err = NewEvalLoader(d, aug.A, tt.cfg)
		} else {
			l, err = NewLoader(d, aug, tt.cfg)
		}
		must(t, err)
		var got []Batch
		for err == nil {
			var b *Batch
			if b, err = l.Next(); err == nil {
				got = append(got, Batch{Index: slices.Clone(b.Index)})
			}
		}
		l.Close()
		errAt, wantErr := tt.errAt, tt.err
		if errAt < 0 {
			// The first bad image in the order the epoch visits the
			// dataset (index order, lexical by path, without Shuffle),
			// whichever worker reaches a bad file first.
			perm := l.Permutation(0)
			pos := slices.IndexFunc(perm, func(i int) bool { return bad[i] != "" })
			errAt, wantErr = pos/tt.cfg.BatchSize, "pipeline: "+bad[perm[pos]]+": "
		}
		switch {
		case len(got) != errAt:
			t.Errorf("%s: %d batches before %v, want %d", tt.name, len(got), err, errAt)
		case wantErr == "" && err != io.EOF:
			t.Errorf("%s: %v, want the run to finish", tt.name, err)
		case wantErr != "" && (err == nil || !strings.HasPrefix(err.Error(), wantErr)):
			t.Errorf("%s: %v, want an error starting %q", tt.name, err, wantErr)
		}
		for _, b := range got {
			for _, i := range b.Index {
				if bad[i] != "" {
					t.Errorf("%s: bad image %s in a batch", tt.name, bad[i])
				}
			}
		}
		if !tt.cfg.SkipBad {
			if len(reported) != 0 || len(l.Skipped()) != 0 {
				t.Errorf("%s: skipped %v without SkipBad", tt.name, l.Skipped())
			}
			continue
		}
		if wantErr == "" {
			skipped := l.Skipped()
			if len(skipped) != len(bad) || len(reported) != len(bad) {
				t.Errorf("%s: Skipped() = %v, OnSkip %v; want each of the %d bad files once", tt.name, skipped, reported, len(bad))
			}
			for _, s := range skipped {
				if s.Err == nil || !strings.Contains(s.Err.Error(), bad[s.Index]) {
					t.Errorf("%s: skipped image %d: %v, want an error naming %s", tt.name, s.Index, s.Err, bad[s.Index])
				}
			}
		}
	}

	// Skipping, the batches are the same with one worker as with three.
	var ref []Batch
	for _, workers := range []int{1, 3} {
		l, err := NewLoader(d, aug, LoaderConfig{BatchSize: 3, Workers: workers, Seed: 7, Shuffle: true, Epochs: 2, SkipBad: true, MaxBadFraction: 0.5})
		must(t, err)
		got := collect(t, l, true)
		l.Close()
		if ref == nil {
			ref = got
		} else {
			equalBatches(t, "3 workers, skipping", got, ref)
		}
	}
}

func TestFolderMaxPixels(t *testing.T) {
	root := t.TempDir()
	huge := filepath.Join(root, "huge.png")
	must(t, os.WriteFile(huge, pngHeader(20000, 20000), 0o644))
	small := filepath.Join(root, "small.png")
	writeImage(t, small, encPNG, solid(color.NRGBA{0, 255, 0, 255})) // 6×4
	tests := []struct {
		name      string
		maxPixels int
		file      int    // index: 0 huge.png, 1 small.png
		err       string // "" to load
	}{
		{"huge, default limit", 0, 0, huge + ": png image of 20000×20000 = 400000000 pixels, above the limit of 89478485 pixels"},
		// Without the limit the decoder runs and finds no pixel data: the
		// error above came from the header.
		{"huge, no limit", -1, 0, huge + ": decoding the png image: png: invalid format: chunk out of order"},
		{"at the limit", 24, 1, ""},
		{"above the limit", 23, 1, small + ": png image of 6×4 = 24 pixels, above the limit of 23 pixels"},
	}
	for _, tt := range tests {
		d, err := Open("folder-unlabeled", root, "train", FolderOptions{MaxPixels: tt.maxPixels})
		must(t, err)
		var img Image
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		err = d.Load(tt.file, &img)
		runtime.ReadMemStats(&after)
		switch {
		case tt.err == "" && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case tt.err != "" && (err == nil || !strings.HasPrefix(err.Error(), "pipeline: "+tt.err)):
			t.Errorf("%s: %v, want pipeline: %s", tt.name, err, tt.err)
		}
		file := []string{huge, small}[tt.file]
		if got, want := loaderErr(t, file, FolderOptions{MaxPixels: tt.maxPixels}), fmt.Sprint(err); err != nil && got != want || err == nil && got != "" {
			t.Errorf("%s: the loader says %q, Load %q", tt.name, got, want)
		}
		// Decoding 20000×20000 pixels would allocate at least 400 MB.
		if alloc := after.TotalAlloc - before.TotalAlloc; tt.file == 0 && alloc > 1<<20 {
			t.Errorf("%s: refusing the image allocated %d bytes", tt.name, alloc)
		}
	}
	if _, err := Open("folder", root, "train", FolderOptions{}, FolderOptions{}); err == nil {
		t.Error("Open with two FolderOptions succeeded")
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
