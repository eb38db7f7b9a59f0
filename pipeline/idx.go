package pipeline

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
)

// Class names of the IDX datasets, in label order.
var (
	FashionMNISTClasses = []string{"T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"}
	MNISTClasses        = []string{"0", "1", "2", "3", "4", "5", "6", "7", "8", "9"}
)

// maxIDXElems bounds what a header may claim (16 GiB), so a corrupt header
// fails with a FormatError instead of an overflow.
const maxIDXElems = 1 << 34

// IDX is an MNIST-style dataset: an idx3 image file and an idx1 label file
// of unsigned bytes, raw or gzipped.
type IDX struct {
	file    string
	n, h, w int
	pix     []byte
	labels  []byte
	classes []string
}

// OpenIDX reads the split ("train" or "test", files train-* or t10k-*) of an
// IDX dataset in dir, with or without .gz, and checks every label against
// classes.
func OpenIDX(dir, split string, classes []string) (*IDX, error) {
	prefix := map[string]string{"train": "train", "test": "t10k"}[split]
	if prefix == "" {
		return nil, fmt.Errorf("pipeline: split %q, want \"train\" or \"test\"", split)
	}
	imgFile, err := findFile(dir, prefix+"-images-idx3-ubyte", prefix+"-images.idx3-ubyte")
	if err != nil {
		return nil, err
	}
	lblFile, err := findFile(dir, prefix+"-labels-idx1-ubyte", prefix+"-labels.idx1-ubyte")
	if err != nil {
		return nil, err
	}
	dims, pix, err := readIDXFile(imgFile)
	if err != nil {
		return nil, err
	}
	if len(dims) != 3 {
		return nil, &FormatError{File: imgFile, Offset: 3, Expected: "3 dimensions (images)", Got: strconv.Itoa(len(dims))}
	}
	ldims, labels, err := readIDXFile(lblFile)
	if err != nil {
		return nil, err
	}
	if len(ldims) != 1 {
		return nil, &FormatError{File: lblFile, Offset: 3, Expected: "1 dimension (labels)", Got: strconv.Itoa(len(ldims))}
	}
	if ldims[0] != dims[0] {
		return nil, &FormatError{File: lblFile, Offset: 4, Expected: fmt.Sprintf("%d labels, one per image of %s", dims[0], imgFile), Got: strconv.Itoa(ldims[0])}
	}
	if err := checkLabels(lblFile, 8, 1, labels, len(classes)); err != nil {
		return nil, err
	}
	return &IDX{file: imgFile, n: dims[0], h: dims[1], w: dims[2], pix: pix, labels: labels, classes: classes}, nil
}

// checkLabels verifies that every label (one byte every stride bytes from
// offset base) names a class.
func checkLabels(file string, base int64, stride int, labels []byte, classes int) error {
	for i := 0; i < len(labels); i += stride {
		if int(labels[i]) >= classes {
			return &FormatError{File: file, Offset: base + int64(i), Expected: fmt.Sprintf("a label below %d", classes), Got: strconv.Itoa(int(labels[i]))}
		}
	}
	return nil
}

func findFile(dir string, names ...string) (string, error) {
	for _, n := range names {
		for _, suffix := range []string{"", ".gz"} {
			p := filepath.Join(dir, n+suffix)
			if _, err := os.Stat(p); err == nil {
				return p, nil
			}
		}
	}
	return "", fmt.Errorf("pipeline: none of %v (or .gz) in %s", names, dir)
}

func readIDXFile(path string) ([]int, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, fmt.Errorf("pipeline: %w", err)
	}
	defer f.Close()
	return readIDX(f, path)
}

// readIDX parses an IDX stream of unsigned bytes, gunzipping it first when
// it starts with the gzip magic. Memory grows with the bytes actually read,
// not with what the header claims.
func readIDX(r io.Reader, name string) ([]int, []byte, error) {
	br := bufio.NewReader(r)
	gz := false
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, &FormatError{File: name, Expected: "a gzip header", Got: err.Error()}
		}
		defer zr.Close()
		r, gz = zr, true
	} else {
		r = br
	}
	cr := &countingReader{r: r}
	fail := func(off int64, want string, err error) error {
		got := "end of file"
		if err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
			got = err.Error()
		}
		return &FormatError{File: name, Offset: off, Gzip: gz, Expected: want, Got: got}
	}
	var head [4]byte
	if _, err := io.ReadFull(cr, head[:]); err != nil {
		return nil, nil, fail(cr.n, "the 4-byte IDX magic", err)
	}
	if head[0] != 0 || head[1] != 0 || head[2] != 0x08 || head[3] == 0 {
		return nil, nil, &FormatError{File: name, Gzip: gz, Expected: "IDX magic 00 00 08 <dims> (unsigned bytes)", Got: fmt.Sprintf("% x", head)}
	}
	dims := make([]int, head[3])
	total := int64(1)
	for i := range dims {
		var d [4]byte
		off := cr.n
		if _, err := io.ReadFull(cr, d[:]); err != nil {
			return nil, nil, fail(off, fmt.Sprintf("dimension %d of %d", i+1, len(dims)), err)
		}
		v := int64(binary.BigEndian.Uint32(d[:]))
		if v == 0 || v > maxIDXElems/total { // division: the product may overflow
			return nil, nil, &FormatError{File: name, Offset: off, Gzip: gz, Expected: fmt.Sprintf("a dimension in [1, %d] with at most %d elements in all", uint32(1<<31-1), int64(maxIDXElems)), Got: strconv.FormatInt(v, 10)}
		}
		dims[i] = int(v)
		total *= v
	}
	var buf bytes.Buffer
	start := cr.n
	n, err := io.CopyN(&buf, cr, total)
	if n < total {
		return nil, nil, fail(start+n, fmt.Sprintf("%d data bytes for dimensions %v", total, dims), err)
	}
	// Reading past the data also makes gzip verify its checksum.
	var extra [1]byte
	k, err := io.ReadFull(cr, extra[:])
	if k > 0 {
		return nil, nil, &FormatError{File: name, Offset: cr.n - 1, Gzip: gz, Expected: "end of file", Got: "trailing data"}
	}
	if err != io.EOF {
		return nil, nil, &FormatError{File: name, Offset: cr.n, Gzip: gz, Expected: "end of file", Got: err.Error()}
	}
	return dims, buf.Bytes(), nil
}

// Len implements Dataset.
func (d *IDX) Len() int { return d.n }

// Channels implements Dataset: IDX images are gray.
func (d *IDX) Channels() int { return 1 }

// Size implements Dataset.
func (d *IDX) Size() (h, w int) { return d.h, d.w }

// NumClasses implements Dataset.
func (d *IDX) NumClasses() int { return len(d.classes) }

// ClassNames implements Dataset.
func (d *IDX) ClassNames() []string { return d.classes }

// Label implements Dataset.
func (d *IDX) Label(i int) int { return int(d.labels[i]) }

// Load implements Dataset.
func (d *IDX) Load(i int, dst *Image) error {
	if i < 0 || i >= d.n {
		return fmt.Errorf("pipeline: %s: image %d out of range [0, %d)", d.file, i, d.n)
	}
	dst.Resize(1, d.h, d.w)
	px := d.pix[i*d.h*d.w : (i+1)*d.h*d.w]
	for j, v := range px {
		dst.Pix[j] = float32(v) * (1.0 / 255)
	}
	return nil
}
