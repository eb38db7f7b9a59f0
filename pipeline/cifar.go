package pipeline

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// cifarPixels is the size of one 32×32 RGB image, stored planar.
const cifarPixels = 3 * 32 * 32

// CIFAR is CIFAR-10 or CIFAR-100 in the binary distribution's format:
// records of label byte(s) followed by 3072 planar RGB pixels. CIFAR-100
// uses the fine (100-class) labels.
type CIFAR struct {
	file    string // first file, for error messages
	pix     []byte // n × 3072
	labels  []byte
	classes []string
}

// OpenCIFAR reads a split of CIFAR-10 (classes 10: data_batch_1..5.bin,
// test_batch.bin) or CIFAR-100 (classes 100: train.bin, test.bin) from dir
// or from its cifar-10-batches-bin / cifar-100-binary subdirectory. Class
// names come from batches.meta.txt / fine_label_names.txt when present.
func OpenCIFAR(dir, split string, classes int) (*CIFAR, error) {
	var sub, meta string
	var files []string
	switch {
	case classes == 10 && split == "train":
		sub, meta = "cifar-10-batches-bin", "batches.meta.txt"
		for i := 1; i <= 5; i++ {
			files = append(files, fmt.Sprintf("data_batch_%d.bin", i))
		}
	case classes == 10 && split == "test":
		sub, meta, files = "cifar-10-batches-bin", "batches.meta.txt", []string{"test_batch.bin"}
	case classes == 100 && (split == "train" || split == "test"):
		sub, meta, files = "cifar-100-binary", "fine_label_names.txt", []string{split + ".bin"}
	default:
		return nil, fmt.Errorf("pipeline: CIFAR with %d classes, split %q: want 10 or 100 classes, split train or test", classes, split)
	}
	if fi, err := os.Stat(filepath.Join(dir, sub)); err == nil && fi.IsDir() {
		dir = filepath.Join(dir, sub)
	}
	d := &CIFAR{file: filepath.Join(dir, files[0])}
	for _, f := range files {
		path := filepath.Join(dir, f)
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("pipeline: %w", err)
		}
		pix, labels, err := parseCIFAR(data, path, classes)
		if err != nil {
			return nil, err
		}
		d.pix = append(d.pix, pix...)
		d.labels = append(d.labels, labels...)
	}
	names, err := readNames(filepath.Join(dir, meta), classes)
	if err != nil {
		return nil, err
	}
	d.classes = names
	return d, nil
}

// parseCIFAR splits a CIFAR binary file into pixels and labels, checking
// that it holds whole records and that every label names a class.
func parseCIFAR(data []byte, name string, classes int) (pix, labels []byte, err error) {
	head := 1
	if classes == 100 {
		head = 2 // coarse label, then fine label
	}
	rec := head + cifarPixels
	switch {
	case len(data) >= 2 && data[0] == 0x1f && data[1] == 0x8b:
		return nil, nil, &FormatError{File: name, Expected: "CIFAR binary records", Got: "gzip data (extract the .tar.gz first)"}
	case len(data) == 0:
		return nil, nil, &FormatError{File: name, Expected: fmt.Sprintf("%d-byte records", rec), Got: "an empty file"}
	case len(data)%rec != 0:
		off := len(data) - len(data)%rec
		return nil, nil, &FormatError{File: name, Offset: int64(off), Expected: fmt.Sprintf("a whole %d-byte record", rec), Got: fmt.Sprintf("%d bytes (truncated file)", len(data)-off)}
	}
	n := len(data) / rec
	pix = make([]byte, 0, n*cifarPixels)
	labels = make([]byte, 0, n)
	for i := range n {
		r := data[i*rec : (i+1)*rec]
		if head == 2 && r[0] >= 20 {
			return nil, nil, &FormatError{File: name, Offset: int64(i * rec), Expected: "a coarse label below 20", Got: strconv.Itoa(int(r[0]))}
		}
		if l := r[head-1]; int(l) >= classes {
			return nil, nil, &FormatError{File: name, Offset: int64(i*rec + head - 1), Expected: fmt.Sprintf("a label below %d", classes), Got: strconv.Itoa(int(l))}
		}
		labels = append(labels, r[head-1])
		pix = append(pix, r[head:]...)
	}
	return pix, labels, nil
}

// readNames reads one class name per line; a missing file gives numbered
// names, since the labels are what training needs.
func readNames(path string, classes int) ([]string, error) {
	data, err := os.ReadFile(path)
	if os.IsNotExist(err) {
		names := make([]string, classes)
		for i := range names {
			names[i] = strconv.Itoa(i)
		}
		return names, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		if s := strings.TrimSpace(sc.Text()); s != "" {
			names = append(names, s)
		}
	}
	if len(names) != classes {
		return nil, fmt.Errorf("pipeline: %s: %d class names, want %d", path, len(names), classes)
	}
	return names, nil
}

// Len implements Dataset.
func (d *CIFAR) Len() int { return len(d.labels) }

// Channels implements Dataset.
func (d *CIFAR) Channels() int { return 3 }

// Size implements Dataset.
func (d *CIFAR) Size() (h, w int) { return 32, 32 }

// NumClasses implements Dataset.
func (d *CIFAR) NumClasses() int { return len(d.classes) }

// ClassNames implements Dataset.
func (d *CIFAR) ClassNames() []string { return d.classes }

// Label implements Dataset.
func (d *CIFAR) Label(i int) int { return int(d.labels[i]) }

// Load implements Dataset.
func (d *CIFAR) Load(i int, dst *Image) error {
	if i < 0 || i >= len(d.labels) {
		return fmt.Errorf("pipeline: %s: image %d out of range [0, %d)", d.file, i, len(d.labels))
	}
	dst.Resize(3, 32, 32)
	for j, v := range d.pix[i*cifarPixels : (i+1)*cifarPixels] {
		dst.Pix[j] = float32(v) * (1.0 / 255)
	}
	return nil
}
