package pipeline

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// idxBytes encodes an unsigned-byte IDX file.
func idxBytes(dims []int, data []byte) []byte {
	var b bytes.Buffer
	b.Write([]byte{0, 0, 0x08, byte(len(dims))})
	for _, d := range dims {
		binary.Write(&b, binary.BigEndian, uint32(d))
	}
	b.Write(data)
	return b.Bytes()
}

func gz(data []byte) []byte {
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	w.Write(data)
	w.Close()
	return b.Bytes()
}

// writeMNIST writes a tiny MNIST-style split: n images of h×w where image i
// is filled with byte i*10 and labelled i%10.
func writeMNIST(t testing.TB, dir, prefix string, n, h, w int, compress bool) {
	t.Helper()
	pix := make([]byte, n*h*w)
	labels := make([]byte, n)
	for i := range n {
		for j := range h * w {
			pix[i*h*w+j] = byte(i * 10)
		}
		labels[i] = byte(i % 10)
	}
	imgs, lbls := idxBytes([]int{n, h, w}, pix), idxBytes([]int{n}, labels)
	suffix := ""
	if compress {
		imgs, lbls, suffix = gz(imgs), gz(lbls), ".gz"
	}
	must(t, os.WriteFile(filepath.Join(dir, prefix+"-images-idx3-ubyte"+suffix), imgs, 0o644))
	must(t, os.WriteFile(filepath.Join(dir, prefix+"-labels-idx1-ubyte"+suffix), lbls, 0o644))
}

func near(a, b float32) bool { return a-b < 1e-6 && b-a < 1e-6 }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func TestOpenIDX(t *testing.T) {
	for _, compress := range []bool{false, true} {
		dir := t.TempDir()
		writeMNIST(t, dir, "train", 12, 5, 4, compress)
		writeMNIST(t, dir, "t10k", 3, 5, 4, compress)
		for _, tt := range []struct {
			split string
			n     int
		}{{"train", 12}, {"test", 3}} {
			d, err := Open("fashion-mnist", dir, tt.split)
			if err != nil {
				t.Fatal(err)
			}
			h, w := d.Size()
			if d.Len() != tt.n || h != 5 || w != 4 || d.Channels() != 1 || d.NumClasses() != 10 || d.ClassNames()[9] != "Ankle boot" {
				t.Fatalf("gz=%v %s: len %d size %d×%d channels %d classes %d", compress, tt.split, d.Len(), h, w, d.Channels(), d.NumClasses())
			}
			var m Image
			for i := range tt.n {
				must(t, d.Load(i, &m))
				if d.Label(i) != i%10 || m.C != 1 || m.H != 5 || m.W != 4 || !near(m.Pix[7], float32(i*10)/255) {
					t.Fatalf("image %d: label %d, shape %d×%d×%d, pixel %v", i, d.Label(i), m.C, m.H, m.W, m.Pix[7])
				}
			}
			if d.Load(tt.n, &m) == nil {
				t.Error("Load past the end succeeded")
			}
		}
	}
}

func TestIDXBadInput(t *testing.T) {
	good := idxBytes([]int{2, 3, 3}, make([]byte, 18))
	tests := []struct {
		name   string
		data   []byte
		gzip   bool
		offset int64
		want   string
	}{
		{"empty", nil, false, 0, "4-byte IDX magic"},
		{"wrong magic", append([]byte{0x50, 0x4b, 3, 4}, good[4:]...), false, 0, "IDX magic"},
		{"float type", append([]byte{0, 0, 0x0d, 3}, good[4:]...), false, 0, "IDX magic"},
		{"truncated header", good[:9], false, 8, "dimension 2 of 3"},
		{"zero dimension", idxBytes([]int{0, 3, 3}, nil), false, 4, "a dimension in"},
		{"huge dimensions", idxBytes([]int{1 << 30, 1 << 30, 1 << 30}, nil), false, 8, "a dimension in"},
		{"overflowing dimensions", idxBytes([]int{4046467120, 4046467120}, nil), false, 8, "a dimension in"},
		{"truncated data", good[:len(good)-5], false, 16 + 13, "18 data bytes"},
		{"trailing data", append(good, 1), false, 16 + 18, "end of file"},
		{"truncated gzip header", gz(good)[:20], true, 0, "dimension"},
		{"gzip without checksum", gz(good)[:len(gz(good))-8], true, 0, "end of file"},
		{"gzip with bad checksum", append(gz(good)[:len(gz(good))-8], 1, 2, 3, 4, 34, 0, 0, 0), true, 0, "end of file"},
		{"gzip of garbage", gz([]byte("hello")), true, 0, "IDX magic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readIDX(bytes.NewReader(tt.data), "x.idx")
			var fe *FormatError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v, want a *FormatError", err)
			}
			if fe.File != "x.idx" || fe.Gzip != tt.gzip || !strings.Contains(fe.Expected, tt.want) {
				t.Errorf("got %+v, want file x.idx, gzip %v, expected ~%q", fe, tt.gzip, tt.want)
			}
			if !tt.gzip && fe.Offset != tt.offset {
				t.Errorf("offset %d, want %d (%v)", fe.Offset, tt.offset, err)
			}
			if !strings.Contains(err.Error(), "x.idx") || !strings.Contains(err.Error(), "offset") {
				t.Errorf("message %q does not name the file and offset", err)
			}
		})
	}
}

func TestOpenIDXMismatch(t *testing.T) {
	write := func(dir string, imgs, lbls []byte) {
		must(t, os.WriteFile(filepath.Join(dir, "train-images-idx3-ubyte"), imgs, 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "train-labels-idx1-ubyte"), lbls, 0o644))
	}
	imgs := idxBytes([]int{3, 2, 2}, make([]byte, 12))
	tests := []struct {
		name   string
		imgs   []byte
		lbls   []byte
		file   string
		offset int64
	}{
		{"label out of range", imgs, idxBytes([]int{3}, []byte{1, 10, 2}), "train-labels-idx1-ubyte", 9},
		{"count mismatch", imgs, idxBytes([]int{2}, []byte{1, 2}), "train-labels-idx1-ubyte", 4},
		{"labels as images", idxBytes([]int{3}, []byte{1, 2, 3}), idxBytes([]int{3}, []byte{1, 2, 3}), "train-images-idx3-ubyte", 3},
		{"images as labels", imgs, imgs, "train-labels-idx1-ubyte", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			write(dir, tt.imgs, tt.lbls)
			_, err := OpenIDX(dir, "train", MNISTClasses)
			var fe *FormatError
			if !errors.As(err, &fe) || filepath.Base(fe.File) != tt.file || fe.Offset != tt.offset {
				t.Fatalf("error %v, want a FormatError in %s at offset %d", err, tt.file, tt.offset)
			}
		})
	}
	if _, err := OpenIDX(t.TempDir(), "train", MNISTClasses); err == nil || !strings.Contains(err.Error(), "train-images-idx3-ubyte") {
		t.Errorf("missing files: error %v, want one naming the file looked for", err)
	}
}

// TestFashionMNIST reads the real dataset installed by .ci/run. It fails,
// never skips, when the files are missing: CI must not pass without
// having read them.
func TestFashionMNIST(t *testing.T) {
	dir := filepath.Join(DefaultDir, "fashion-mnist")
	if _, err := os.Stat(dir); err != nil {
		t.Fatalf("Fashion-MNIST is not installed (%v): run apt-get install -y dataset-fashion-mnist", err)
	}
	for _, tt := range []struct {
		split string
		n     int
	}{{"train", 60000}, {"test", 10000}} {
		d, err := Open("fashion-mnist", "", tt.split)
		if err != nil {
			t.Fatal(err)
		}
		h, w := d.Size()
		if d.Len() != tt.n || h != 28 || w != 28 || d.NumClasses() != 10 {
			t.Fatalf("%s: %d images of %d×%d, %d classes; want %d of 28×28, 10 classes", tt.split, d.Len(), h, w, d.NumClasses(), tt.n)
		}
		// Fashion-MNIST is exactly balanced.
		var counts [10]int
		for i := range d.Len() {
			counts[d.Label(i)]++
		}
		for c, k := range counts {
			if k != tt.n/10 {
				t.Errorf("%s: class %d has %d images, want %d", tt.split, c, k, tt.n/10)
			}
		}
		if tt.split != "train" {
			continue
		}
		// The training set's pixel mean is the preset's normalisation
		// mean, 0.2860 to four places.
		var m Image
		var sum float64
		for i := range d.Len() {
			must(t, d.Load(i, &m))
			for _, v := range m.Pix {
				sum += float64(v)
			}
		}
		if mean := sum / float64(d.Len()*28*28); mean < 0.28595 || mean > 0.28605 {
			t.Errorf("pixel mean %.5f, want %.4f", mean, FashionMNISTMean[0])
		}
	}
}
