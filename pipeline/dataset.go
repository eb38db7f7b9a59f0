package pipeline

import (
	"fmt"
	"path/filepath"
	"strings"
)

// Dataset is an indexed collection of labelled images. Implementations are
// safe for concurrent Load calls.
type Dataset interface {
	Len() int
	Channels() int
	// Size is the native image size, or (0, 0) when images differ in size.
	Size() (h, w int)
	// NumClasses is 0 for unlabeled data.
	NumClasses() int
	ClassNames() []string
	// Label is the class of image i, or -1 for unlabeled data.
	Label(i int) int
	// Load writes image i into dst as planar float32 in [0, 1], reusing
	// dst's buffer.
	Load(i int, dst *Image) error
}

// Encoded is implemented by datasets of encoded image files (Folder). For
// them the loader reads a file's header, draws every view's random choices
// from the full size, and only then decodes, at the smallest scale that
// keeps each view's crop at least its output size (DCT-domain scaling with
// libjpeg-turbo). Random draws therefore depend only on the header, never on
// the decoder.
type Encoded interface {
	Dataset
	// ReadFile returns the bytes of image i, reusing buf when it is large
	// enough, and its header. It refuses, before anything is decoded, what
	// Load would refuse from the file and its header (for a Folder: an
	// empty file, an unreadable header, an image above the pixel limit),
	// with the same errors, naming the file.
	ReadFile(i int, buf []byte) ([]byte, ImageHeader, error)
	// Path names image i in decode errors.
	Path(i int) string
}

// Open opens a dataset by name: "fashion-mnist", "mnist", "cifar10",
// "cifar100", "folder" (dir is the root, one subfolder per class),
// "folder-unlabeled" or "synthetic". split is "train" or "test" (for
// folders, the subdirectory of dir if it exists; a test split's labels
// number the training split's classes; "folder-unlabeled"'s train split is
// every image under dir). An empty dir means
// DefaultDir/<name> for the named datasets. opts, at most one, configure a
// folder (its pixel limit, channels, file list; "folder-unlabeled" sets
// Unlabeled); the other datasets are stored decoded at a fixed size and
// ignore them, so a caller can pass its folder settings whatever the name.
func Open(name, dir, split string, opts ...FolderOptions) (Dataset, error) {
	if split != "train" && split != "test" {
		return nil, fmt.Errorf("pipeline: split %q, want \"train\" or \"test\"", split)
	}
	if len(opts) > 1 {
		return nil, fmt.Errorf("pipeline: Open takes at most one FolderOptions, got %d", len(opts))
	}
	var fo FolderOptions
	if len(opts) == 1 {
		fo = opts[0]
	}
	named := func() string {
		if dir == "" {
			return filepath.Join(DefaultDir, name)
		}
		return dir
	}
	switch strings.ToLower(name) {
	case "fashion-mnist", "fashion_mnist", "fashionmnist":
		return OpenIDX(named(), split, FashionMNISTClasses)
	case "mnist":
		return OpenIDX(named(), split, MNISTClasses)
	case "cifar10", "cifar-10":
		return OpenCIFAR(named(), split, 10)
	case "cifar100", "cifar-100":
		return OpenCIFAR(named(), split, 100)
	case "folder", "folder-unlabeled":
		if dir == "" {
			return nil, fmt.Errorf("pipeline: dataset %q needs a directory", name)
		}
		fo.Unlabeled = fo.Unlabeled || strings.EqualFold(name, "folder-unlabeled")
		if fo.Unlabeled && split == "train" {
			// Every image under dir, at any depth, train/ and all.
			return OpenFolder(dir, fo)
		}
		root, err := folderSplit(dir, split)
		if err != nil {
			return nil, err
		}
		if !fo.Unlabeled && split == "test" && fo.Classes == nil {
			// Labels are numbered by the training split's class names,
			// so a class missing from the test split shifts none.
			train, err := folderSplit(dir, "train")
			if err != nil {
				return nil, err
			}
			if fo.Classes, err = listClasses(train); err != nil {
				return nil, err
			}
		}
		return OpenFolder(root, fo)
	case "synthetic":
		cfg := DefaultSynthetic()
		if split == "test" {
			cfg.Seed, cfg.Count = cfg.Seed+1, cfg.Count/5
		}
		return NewSynthetic(cfg)
	}
	return nil, fmt.Errorf("pipeline: unknown dataset %q (have fashion-mnist, mnist, cifar10, cifar100, folder, folder-unlabeled, synthetic)", name)
}
