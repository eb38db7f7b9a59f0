package pipeline

import (
	"context"
	"errors"
	"image/color"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// TestFolderFIFO: a named pipe with an image's name is refused by name
// (opening it would block until something writes to it), by Load and by
// the loader's path alike.
func TestFolderFIFO(t *testing.T) {
	root := t.TempDir()
	writeImage(t, filepath.Join(root, "a.png"), encPNG, solid(color.NRGBA{255, 0, 0, 255}))
	fifo := filepath.Join(root, "x.png")
	mkfifo(t, fifo)
	d, err := OpenFolder(root, FolderOptions{Unlabeled: true})
	must(t, err)
	if d.Len() != 2 || d.Path(1) != fifo {
		t.Fatalf("%d images (%v), want a.png and x.png", d.Len(), d.files)
	}
	want := "pipeline: " + fifo + ": not a regular file"
	var img Image
	if err := d.Load(1, &img); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load: %v, want %s…", err, want)
	}
	aug, _ := Preset("cifar")
	l, err := NewEvalLoader(d, aug.A, LoaderConfig{BatchSize: 2, Workers: 1, Epochs: 1})
	must(t, err)
	defer l.Close()
	if _, err := l.Next(); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("loader: %v, want %s…", err, want)
	}
}

// stuck is a dataset whose every Load blocks until release is closed, as
// a read from a stuck network mount does; entered hears of the first.
type stuck struct {
	Dataset
	entered chan struct{}
	release chan struct{}
}

func (s *stuck) Load(i int, dst *Image) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.Dataset.Load(i, dst)
}

// TestNextContext: NextContext gives up waiting for a batch whose images
// never finish loading once its context ends, and Close then returns
// without waiting for the read it cannot interrupt.
func TestNextContext(t *testing.T) {
	ds := &stuck{Dataset: smallSynthetic(t, 8), entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(ds.release)
	l, err := NewLoader(ds, smallConfig(), LoaderConfig{BatchSize: 4, Workers: 2})
	must(t, err)
	ctx, cancel := context.WithCancelCause(context.Background())
	stop := errors.New("Ctrl-C")
	go func() {
		<-ds.entered
		cancel(stop)
	}()
	if _, err := l.NextContext(ctx); !errors.Is(err, stop) {
		t.Errorf("NextContext: %v, want the context's cause", err)
	}
	must(t, l.Close())
	if _, err := l.Next(); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
}

// TestFolderClassesByName: a test split without one of the training
// classes labels its images by the training split's class names, not by
// their position among its own folders; a test class the training split
// lacks is refused, naming it.
func TestFolderClassesByName(t *testing.T) {
	root := t.TempDir()
	red := solid(color.NRGBA{255, 0, 0, 255})
	for _, p := range []string{"train/ant/a.png", "train/bee/b.png", "train/cat/c.png", "val/bee/d.png", "val/cat/e.png"} {
		writeImage(t, filepath.Join(root, p), encPNG, red)
	}
	train, err := Open("folder", root, "train")
	must(t, err)
	test, err := Open("folder", root, "test")
	must(t, err)
	if !slices.Equal(test.ClassNames(), train.ClassNames()) || test.NumClasses() != 3 {
		t.Errorf("test classes %v, want the training split's %v", test.ClassNames(), train.ClassNames())
	}
	for i := range test.Len() {
		name := filepath.Base(filepath.Dir(test.(*Folder).Path(i)))
		if got := test.ClassNames()[test.Label(i)]; got != name {
			t.Errorf("%s has label %d (%s), want %s's", test.(*Folder).Path(i), test.Label(i), got, name)
		}
	}
	writeImage(t, filepath.Join(root, "val", "dog", "f.png"), encPNG, red)
	if _, err := Open("folder", root, "test"); err == nil || !strings.Contains(err.Error(), "class folder dog is not one of the 3 training classes") {
		t.Errorf("a test class without training images: %v", err)
	}
}

// TestFolderSymlinks: a class folder that is a link, and a linked folder
// inside a class, are read like folders; a link back up the tree is read
// once, not for ever.
func TestFolderSymlinks(t *testing.T) {
	store, root := t.TempDir(), t.TempDir()
	red := solid(color.NRGBA{255, 0, 0, 255})
	for _, p := range []string{"cats/a.png", "cats/b.png", "more/c.png", "dogs/d.png"} {
		writeImage(t, filepath.Join(store, p), encPNG, red)
	}
	must(t, os.Symlink(filepath.Join(store, "cats"), filepath.Join(root, "cat")))
	must(t, os.Mkdir(filepath.Join(root, "dog"), 0o755))
	must(t, os.Symlink(filepath.Join(store, "dogs", "d.png"), filepath.Join(root, "dog", "d.png")))
	must(t, os.Symlink(filepath.Join(store, "more"), filepath.Join(store, "cats", "more")))
	must(t, os.Symlink(root, filepath.Join(root, "dog", "loop")))
	d, err := OpenFolder(root, FolderOptions{})
	must(t, err)
	if !slices.Equal(d.ClassNames(), []string{"cat", "dog"}) || d.Len() != 4 {
		t.Fatalf("classes %v, %d images (%v), want cat and dog, 4 images", d.ClassNames(), d.Len(), d.files)
	}
	var img Image
	for i := range d.Len() {
		must(t, d.Load(i, &img))
	}
	u, err := OpenFolder(root, FolderOptions{Unlabeled: true})
	must(t, err)
	if u.Len() != 4 {
		t.Errorf("unlabeled: %d images (%v), want 4", u.Len(), u.files)
	}
}

// TestUnlabeledEveryImage: folder-unlabeled trains on every image at any
// depth, a train/ subfolder's and the rest alike.
func TestUnlabeledEveryImage(t *testing.T) {
	root := t.TempDir()
	red := solid(color.NRGBA{255, 0, 0, 255})
	for _, p := range []string{"train/a.png", "train/x/b.png", "val/c.png", "d.png", "2024/e.png"} {
		writeImage(t, filepath.Join(root, p), encPNG, red)
	}
	d, err := Open("folder-unlabeled", root, "train")
	must(t, err)
	if d.Len() != 5 {
		t.Errorf("%d images, want all 5", d.Len())
	}
}

// TestFolderFormats: a WebP among the images is decoded, by Load and by
// the loader's path, to the pixels of the same image as PNG; a format no
// Go decoder reads (HEIC here) is listed and refused by name, not passed
// over.
func TestFolderFormats(t *testing.T) {
	root := t.TempDir()
	for _, f := range []string{"gopher-doc.1bpp.lossless.webp", "gopher-doc.1bpp.png"} {
		b, err := os.ReadFile(filepath.Join("testdata", "webp", f))
		must(t, err)
		must(t, os.WriteFile(filepath.Join(root, f), b, 0o644))
	}
	heic := filepath.Join(root, "IMG_0001.HEIC")
	must(t, os.WriteFile(heic, []byte("\x00\x00\x00\x18ftypheic"), 0o644))
	d, err := OpenFolder(root, FolderOptions{Unlabeled: true})
	must(t, err)
	if d.Len() != 3 {
		t.Fatalf("%d images (%v), want the HEIC, the PNG and the WebP", d.Len(), d.files)
	}
	var heicAt, pngAt, webpAt int
	for i := range d.Len() {
		switch filepath.Ext(d.Path(i)) {
		case ".HEIC":
			heicAt = i
		case ".png":
			pngAt = i
		case ".webp":
			webpAt = i
		}
	}
	var fromPNG, fromWebP Image
	must(t, d.Load(pngAt, &fromPNG))
	must(t, d.Load(webpAt, &fromWebP))
	if fromWebP.H != fromPNG.H || fromWebP.W != fromPNG.W || !slices.Equal(fromWebP.Pix, fromPNG.Pix) {
		t.Errorf("the WebP decodes to %d×%d, other pixels than its PNG's %d×%d", fromWebP.W, fromWebP.H, fromPNG.W, fromPNG.H)
	}
	if got := loaderErr(t, d.Path(webpAt), FolderOptions{}); got != "" {
		t.Errorf("the loader on the WebP: %s", got)
	}
	want := "pipeline: " + heic + ": a HEIC image, a format bt does not decode"
	var img Image
	if err := d.Load(heicAt, &img); err == nil || !strings.HasPrefix(err.Error(), want) {
		t.Errorf("Load: %v, want %s…", err, want)
	}
	if got := loaderErr(t, heic, FolderOptions{}); !strings.HasPrefix(got, want) {
		t.Errorf("loader: %s, want %s…", got, want)
	}
}

// TestFingerprint: the same images under two roots (ranks that mount the
// data at different paths) have one fingerprint; a missing image, or one
// moved to another class, changes it, and Diff says how.
func TestFingerprint(t *testing.T) {
	red := solid(color.NRGBA{255, 0, 0, 255})
	roots := []string{t.TempDir(), t.TempDir(), t.TempDir(), t.TempDir()}
	for k, root := range roots {
		for _, p := range []string{"cat/a.png", "cat/b.png", "dog/c.png", "dog/d.png"} {
			switch {
			case k == 2 && p == "dog/d.png":
				continue
			case k == 3 && p == "dog/d.png":
				p = "cat/d.png"
			}
			writeImage(t, filepath.Join(root, p), encPNG, red)
		}
	}
	var fps []Fingerprint
	for _, root := range roots {
		d, err := OpenFolder(root, FolderOptions{})
		must(t, err)
		fps = append(fps, FingerprintOf(d))
	}
	if d := fps[0].Diff(fps[1]); d != "" || fps[0].Files != fps[1].Files || !slices.Equal(fps[0].Counts, []int{2, 2}) {
		t.Errorf("the same images under another root: %q, %+v against %+v", d, fps[1], fps[0])
	}
	for k, want := range map[int]string{2: "3 images against 4, images per class [2 1] against [2 2]", 3: "images per class [3 1] against [2 2]"} {
		if d := fps[0].Diff(fps[k]); d != want {
			t.Errorf("root %d: Diff %q, want %q", k, d, want)
		}
	}
}
