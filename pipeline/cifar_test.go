package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// cifarRecords encodes n records; record i has labels (i%20, i%classes) and
// every pixel of channel c equal to i+c.
func cifarRecords(n, classes int) []byte {
	var out []byte
	for i := range n {
		if classes == 100 {
			out = append(out, byte(i%20))
		}
		out = append(out, byte(i%classes))
		for c := range 3 {
			for range 1024 {
				out = append(out, byte(i+c))
			}
		}
	}
	return out
}

func TestOpenCIFAR(t *testing.T) {
	root := t.TempDir()
	c10 := filepath.Join(root, "cifar-10-batches-bin")
	must(t, os.Mkdir(c10, 0o755))
	for i := 1; i <= 5; i++ {
		must(t, os.WriteFile(filepath.Join(c10, "data_batch_"+string(rune('0'+i))+".bin"), cifarRecords(3, 10), 0o644))
	}
	must(t, os.WriteFile(filepath.Join(c10, "test_batch.bin"), cifarRecords(2, 10), 0o644))
	must(t, os.WriteFile(filepath.Join(c10, "batches.meta.txt"), []byte("airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n\n"), 0o644))
	c100 := t.TempDir()
	must(t, os.WriteFile(filepath.Join(c100, "train.bin"), cifarRecords(150, 100), 0o644))
	must(t, os.WriteFile(filepath.Join(c100, "test.bin"), cifarRecords(4, 100), 0o644))

	tests := []struct {
		name, dir, split    string
		n, perFile, classes int
		first               string
	}{
		{"cifar10", root, "train", 15, 3, 10, "airplane"},
		{"cifar10", root, "test", 2, 2, 10, "airplane"},
		{"cifar100", c100, "train", 150, 150, 100, "0"},
		{"cifar100", c100, "test", 4, 4, 100, "0"},
	}
	for _, tt := range tests {
		d, err := Open(tt.name, tt.dir, tt.split)
		must(t, err)
		if d.Len() != tt.n || d.NumClasses() != tt.classes || d.ClassNames()[0] != tt.first || d.Channels() != 3 {
			t.Fatalf("%s %s: %d images, %d classes (%s…)", tt.name, tt.split, d.Len(), d.NumClasses(), d.ClassNames()[0])
		}
		var m Image
		for _, i := range []int{0, tt.n - 1} {
			must(t, d.Load(i, &m))
			rec := i % tt.perFile
			if d.Label(i) != rec%tt.classes || m.H != 32 || m.W != 32 || !near(m.Pix[0], float32(rec)/255) || !near(m.Pix[2048], float32(rec+2)/255) {
				t.Errorf("%s %s image %d: label %d pixels %v %v", tt.name, tt.split, i, d.Label(i), m.Pix[0], m.Pix[2048])
			}
		}
	}
}

func TestCIFARBadInput(t *testing.T) {
	good := cifarRecords(3, 10)
	badLabel := cifarRecords(3, 10)
	badLabel[3073] = 10
	badCoarse := cifarRecords(2, 100)
	badCoarse[3074] = 20
	tests := []struct {
		name    string
		data    []byte
		classes int
		offset  int64
		want    string
	}{
		{"empty", nil, 10, 0, "records"},
		{"truncated", good[:len(good)-100], 10, 2 * 3073, "whole 3073-byte record"},
		{"label out of range", badLabel, 10, 3073, "label below 10"},
		{"coarse label out of range", badCoarse, 100, 3074, "coarse label below 20"},
		{"CIFAR-10 read as CIFAR-100", good, 100, 2 * 3074, "whole 3074-byte record"},
		{"still gzipped", gz(good), 10, 0, "CIFAR binary records"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := parseCIFAR(tt.data, "b.bin", tt.classes)
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != "b.bin" || fe.Offset != tt.offset || !strings.Contains(fe.Expected, tt.want) {
				t.Fatalf("error %v, want a FormatError at offset %d expecting ~%q", err, tt.offset, tt.want)
			}
		})
	}
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "test.bin"), cifarRecords(1, 100), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "fine_label_names.txt"), []byte("a\nb\n"), 0o644))
	if _, err := OpenCIFAR(dir, "test", 100); err == nil || !strings.Contains(err.Error(), "fine_label_names.txt") {
		t.Errorf("short names file: %v", err)
	}
	if _, err := OpenCIFAR(t.TempDir(), "test", 10); err == nil || !strings.Contains(err.Error(), "test_batch.bin") {
		t.Errorf("missing file: %v", err)
	}
}
