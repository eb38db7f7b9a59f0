package pipeline

import (
	"bufio"
	"bytes"
	"fmt"
	"image"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/disintegration/imaging"
	_ "golang.org/x/image/webp" // registers WebP with image.Decode
)

// imageExts are the extensions imaging decodes (with golang.org/x/image's
// BMP, TIFF and WebP decoders).
var imageExts = []string{".jpg", ".jpeg", ".png", ".gif", ".bmp", ".tif", ".tiff", ".webp"}

// undecoded are the other formats a photo folder holds, which no Go
// decoder reads: listed with the images, so that each is refused by name
// (or skipped and reported with LoaderConfig.SkipBad), never passed over.
var undecoded = map[string]string{
	".heic": "HEIC", ".heif": "HEIF", ".avif": "AVIF", ".jxl": "JPEG XL", ".jp2": "JPEG 2000",
	".dng": "raw (DNG)", ".cr2": "raw (Canon)", ".cr3": "raw (Canon)", ".nef": "raw (Nikon)", ".arw": "raw (Sony)",
	".orf": "raw (Olympus)", ".rw2": "raw (Panasonic)", ".raf": "raw (Fujifilm)",
	".psd": "Photoshop", ".svg": "SVG", ".ico": "icon",
}

func isImage(name string) bool {
	ext := strings.ToLower(filepath.Ext(name))
	_, other := undecoded[ext]
	return other || slices.Contains(imageExts, ext)
}

// FolderOptions selects how OpenFolder reads a directory.
type FolderOptions struct {
	// Unlabeled takes every image under the root, recursively, with label
	// -1, for pretraining on a flat or arbitrarily nested folder.
	Unlabeled bool
	// FileList, if set, is a file naming the images to use, one per line,
	// relative to the root; blank lines and lines starting with # are
	// ignored. A bare name such as n01440764_10026.JPEG resolves to
	// n01440764/n01440764_10026.JPEG, the form of the 1% and 10% ImageNet
	// subsets. Classes still come from all subfolders, so labels match the
	// full dataset's.
	FileList string
	// Channels is 3 (the default) or 1.
	Channels int
	// Classes, if set, are the class names labels index, in order: the
	// training split's, for a test split that lacks some of them. Every
	// class folder under the root must be one of them.
	Classes []string
	// MaxPixels refuses an image of more than this many pixels (width ×
	// height), judged from its header before anything is decoded. Decoding
	// costs about 16 bytes a pixel (8-bit RGBA, then float32 planes that
	// the worker keeps for the next image), so a 10000×10000 PNG of a few
	// hundred KB would take 1.6 GB in each worker. 0 means
	// DefaultMaxPixels; a negative value removes the limit.
	MaxPixels int
}

// DefaultMaxPixels is PIL's MAX_IMAGE_PIXELS, the size above which the
// torchvision readers of the reference implementation warn of a
// decompression bomb, so a folder they read without warnings reads here.
const DefaultMaxPixels = 89_478_485

// Folder is a directory of image files, by default one subfolder per class
// (the ImageFolder layout of ImageNet and Imagenette). Images are decoded on
// Load; a file that is empty, not an image, truncated or corrupt, or above
// the pixel limit gives an error naming its path and the fault, which stops
// the Loader unless it skips bad images (LoaderConfig.SkipBad).
type Folder struct {
	root      string
	files     []string
	labels    []int32
	classes   []string
	channels  int
	maxPixels int // ≤ 0: no limit
}

// OpenFolder lists the images under root.
func OpenFolder(root string, opts FolderOptions) (*Folder, error) {
	ch := opts.Channels
	if ch == 0 {
		ch = 3
	}
	if ch != 1 && ch != 3 {
		return nil, fmt.Errorf("pipeline: folder Channels = %d, want 1 or 3", ch)
	}
	fi, err := os.Stat(root)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("pipeline: %s is not a directory", root)
	}
	d := &Folder{root: root, channels: ch, maxPixels: opts.MaxPixels}
	if d.maxPixels == 0 {
		d.maxPixels = DefaultMaxPixels
	}
	var present []string // the class folders there are
	if !opts.Unlabeled {
		if present, err = listClasses(root); err != nil {
			return nil, err
		}
		if len(present) == 0 {
			return nil, fmt.Errorf("pipeline: %s has no class subfolders (for a flat folder of images, open it unlabeled)", root)
		}
		d.classes = present
		if opts.Classes != nil {
			for _, c := range present {
				if !slices.Contains(opts.Classes, c) {
					return nil, fmt.Errorf("pipeline: %s: class folder %s is not one of the %d training classes (%s)", root, c, len(opts.Classes), strings.Join(opts.Classes, ", "))
				}
			}
			d.classes = opts.Classes
		}
	}
	if opts.FileList != "" {
		err = d.readList(opts.FileList, opts.Unlabeled)
	} else {
		err = d.walk(opts.Unlabeled, present)
	}
	if err != nil {
		return nil, err
	}
	return d, nil
}

// listClasses names root's class folders: its subfolders and links to
// folders, hidden ones aside, in lexical order.
func listClasses(root string) ([]string, error) {
	entries, err := os.ReadDir(root)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	var classes []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") && isDir(root, e) {
			classes = append(classes, e.Name())
		}
	}
	return classes, nil
}

// isDir reports whether entry e of dir is a folder or a link to one.
func isDir(dir string, e fs.DirEntry) bool {
	if e.Type()&fs.ModeSymlink != 0 {
		fi, err := os.Stat(filepath.Join(dir, e.Name()))
		return err == nil && fi.IsDir()
	}
	return e.IsDir()
}

// walk lists the images of every class folder there is (present), or of
// the whole root when unlabeled.
func (d *Folder) walk(unlabeled bool, present []string) error {
	seen := map[string]bool{}
	if unlabeled {
		if err := d.collect(d.root, -1, seen); err != nil {
			return err
		}
		if len(d.files) == 0 {
			return fmt.Errorf("pipeline: no images (%s) under %s", strings.Join(imageExts, " "), d.root)
		}
		return nil
	}
	for c, name := range d.classes {
		if !slices.Contains(present, name) {
			continue // a training class this split has no images of
		}
		before := len(d.files)
		if err := d.collect(filepath.Join(d.root, name), int32(c), seen); err != nil {
			return err
		}
		if len(d.files) == before {
			return fmt.Errorf("pipeline: class folder %s has no images (%s)", filepath.Join(d.root, name), strings.Join(imageExts, " "))
		}
	}
	return nil
}

// collect appends the images under dir in lexical order, so indices are
// stable across runs and machines. It follows links to folders, as a
// shell's ls and find -L do; seen holds the folders read so far by their
// resolved paths, so a link back up the tree (a cycle) or to a folder
// already read adds nothing twice.
func (d *Folder) collect(dir string, label int32, seen map[string]bool) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	if seen[real] {
		return nil
	}
	seen[real] = true
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	for _, e := range entries {
		// Hidden entries are tool debris (.DS_Store, AppleDouble ._x.jpg
		// files that do not decode, .cache folders), not data.
		if strings.HasPrefix(e.Name(), ".") {
			continue
		}
		path := filepath.Join(dir, e.Name())
		if isDir(dir, e) {
			if err := d.collect(path, label, seen); err != nil {
				return err
			}
		} else if isImage(path) {
			d.files = append(d.files, path)
			d.labels = append(d.labels, label)
		}
	}
	return nil
}

func (d *Folder) readList(list string, unlabeled bool) error {
	data, err := os.ReadFile(list)
	if err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		rel := strings.TrimSpace(sc.Text())
		if rel == "" || strings.HasPrefix(rel, "#") {
			continue
		}
		if !strings.ContainsAny(rel, `/\`) && !unlabeled {
			if class, _, ok := strings.Cut(rel, "_"); ok {
				rel = class + "/" + rel
			}
		}
		rel = filepath.FromSlash(rel)
		path := filepath.Join(d.root, rel)
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("pipeline: %s:%d: %w", list, line, err)
		}
		label := int32(-1)
		if !unlabeled {
			class, _, _ := strings.Cut(filepath.ToSlash(rel), "/")
			i := slices.Index(d.classes, class)
			if i < 0 || !strings.Contains(filepath.ToSlash(rel), "/") {
				return fmt.Errorf("pipeline: %s:%d: %s is in no class folder of %s (classes %d: %s…)", list, line, rel, d.root, len(d.classes), d.classes[0])
			}
			label = int32(i)
		}
		d.files = append(d.files, path)
		d.labels = append(d.labels, label)
	}
	if len(d.files) == 0 {
		return fmt.Errorf("pipeline: file list %s names no images", list)
	}
	return nil
}

// Len implements Dataset.
func (d *Folder) Len() int { return len(d.files) }

// Channels implements Dataset.
func (d *Folder) Channels() int { return d.channels }

// Size implements Dataset: folder images differ in size.
func (d *Folder) Size() (h, w int) { return 0, 0 }

// NumClasses implements Dataset.
func (d *Folder) NumClasses() int { return len(d.classes) }

// ClassNames implements Dataset.
func (d *Folder) ClassNames() []string { return d.classes }

// Label implements Dataset.
func (d *Folder) Label(i int) int { return int(d.labels[i]) }

// Path is the file of image i.
func (d *Folder) Path(i int) string { return d.files[i] }

// Load implements Dataset, honouring EXIF orientation as photo viewers do.
// It reads the image's header before decoding it, so an image above the
// pixel limit is refused without allocating its pixels.
func (d *Folder) Load(i int, dst *Image) error {
	f, _, err := d.open(i)
	if err != nil {
		return err
	}
	defer f.Close()
	path := d.files[i]
	br := bufio.NewReader(f)
	hdr, format, err := image.DecodeConfig(br)
	if err != nil {
		return fmt.Errorf("pipeline: %s: reading the image header: %w", path, err)
	}
	if err := d.checkPixels(path, format, hdr.Width, hdr.Height); err != nil {
		return err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return fmt.Errorf("pipeline: %w", err)
	}
	br.Reset(f)
	img, err := imaging.Decode(br, imaging.AutoOrientation(true))
	if err != nil {
		return fmt.Errorf("pipeline: %s: decoding the %s image: %w", path, format, err)
	}
	if img.Bounds().Empty() {
		return fmt.Errorf("pipeline: %s: empty image", path)
	}
	FromImage(dst, img, d.channels)
	return nil
}

// ReadFile implements Encoded: the bytes of image i's file, read into buf
// when it is large enough, and its header. The file is judged as Load
// judges it before decoding, with the same errors: an empty file, an
// unreadable header, an image above the pixel limit; and an image of no
// pixels, which the views could not draw a crop from.
func (d *Folder) ReadFile(i int, buf []byte) ([]byte, ImageHeader, error) {
	f, n, err := d.open(i)
	if err != nil {
		return nil, ImageHeader{}, err
	}
	defer f.Close()
	path := d.files[i]
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	if _, err := io.ReadFull(f, buf); err != nil {
		return nil, ImageHeader{}, fmt.Errorf("pipeline: %s: %w", path, err)
	}
	hdr, err := readHeader(buf)
	if err != nil {
		return nil, ImageHeader{}, fmt.Errorf("pipeline: %s: reading the image header: %w", path, err)
	}
	// The limit is reported in the stored size, as Load reports it.
	w, h := hdr.W, hdr.H
	if hdr.Orientation >= 5 {
		w, h = h, w
	}
	if err := d.checkPixels(path, hdr.Format, w, h); err != nil {
		return nil, ImageHeader{}, err
	}
	if hdr.W <= 0 || hdr.H <= 0 {
		return nil, ImageHeader{}, fmt.Errorf("pipeline: %s: empty image", path)
	}
	return buf, hdr, nil
}

// open opens image i's file and gives its size, refusing what is not a
// regular file and an empty file: the latter would otherwise read as
// "unknown format", which suggests a wrong extension rather than a failed
// copy.
func (d *Folder) open(i int) (*os.File, int, error) {
	if i < 0 || i >= len(d.files) {
		return nil, 0, fmt.Errorf("pipeline: %s: image %d out of range [0, %d)", d.root, i, len(d.files))
	}
	path := d.files[i]
	if format, ok := undecoded[strings.ToLower(filepath.Ext(path))]; ok {
		return nil, 0, fmt.Errorf("pipeline: %s: a %s image, a format bt does not decode (%s); convert it, to JPEG or PNG say, or move it out", path, format, strings.Join(imageExts, " "))
	}
	// Opening a named pipe or a device blocks until something writes to
	// it, which may be never: only regular files are opened.
	if fi, err := os.Stat(path); err != nil {
		return nil, 0, fmt.Errorf("pipeline: %w", err)
	} else if !fi.Mode().IsRegular() {
		return nil, 0, fmt.Errorf("pipeline: %s: not a regular file (%v), not an image", path, fi.Mode().Type())
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, 0, fmt.Errorf("pipeline: %w", err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, 0, fmt.Errorf("pipeline: %w", err)
	}
	if fi.Size() == 0 {
		f.Close()
		return nil, 0, fmt.Errorf("pipeline: %s: empty file (0 bytes)", path)
	}
	return f, int(fi.Size()), nil
}

// checkPixels refuses an image whose header gives more pixels than the
// limit. Orientation swaps width and height but keeps their product.
func (d *Folder) checkPixels(path, format string, w, h int) error {
	if px := int64(w) * int64(h); d.maxPixels > 0 && px > int64(d.maxPixels) {
		return fmt.Errorf("pipeline: %s: %s image of %d×%d = %d pixels, above the limit of %d pixels (FolderOptions.MaxPixels)",
			path, format, w, h, px, d.maxPixels)
	}
	return nil
}

// folderSplit picks dir/train for "train" (else dir itself, a folder of
// classes) and dir/test or dir/val for "test", the usual layouts; a test
// split that is not there is an error rather than the training images.
func folderSplit(dir, split string) (string, error) {
	names := []string{"train"}
	if split == "test" {
		names = []string{"test", "val"}
	}
	for _, n := range names {
		if fi, err := os.Stat(filepath.Join(dir, n)); err == nil && fi.IsDir() {
			return filepath.Join(dir, n), nil
		}
	}
	if split == "test" {
		return "", fmt.Errorf("pipeline: %s has no test or val subfolder", dir)
	}
	return dir, nil
}
