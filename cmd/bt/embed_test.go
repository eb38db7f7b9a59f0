package main

import (
	"bytes"
	"encoding/binary"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/train"
)

// readNpyF32 reads a 2-D float32 .npy written by writeNpy.
func readNpyF32(t *testing.T, path string) (rows, cols int, v []float32) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	n := int(binary.LittleEndian.Uint16(b[8:10]))
	header := string(b[10 : 10+n])
	if !strings.Contains(header, "'descr': '<f4'") || (10+n)%64 != 0 {
		t.Fatalf("%s: header %q", path, header)
	}
	shape := header[strings.Index(header, "(")+1 : strings.Index(header, ")")]
	dims := strings.Split(shape, ", ")
	rows, _ = strconv.Atoi(dims[0])
	cols, _ = strconv.Atoi(dims[1])
	v = make([]float32, rows*cols)
	if err := binary.Read(bytes.NewReader(b[10+n:]), binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
	return rows, cols, v
}

// TestEmbedExample: examples/embed, given a checkpoint from a short run and
// image files, prints the rows bt eval embed writes for the same files,
// and bt eval embed works on an unlabelled folder and an exported backbone.
func TestEmbedExample(t *testing.T) {
	root := t.TempDir()
	writeImages(t, root, 5)
	run := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(args("-out", run, "-steps", "2")); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(run, train.Latest)
	exported := filepath.Join(t.TempDir(), "backbone.safetensors")
	if err := runExport([]string{"-checkpoint", ckpt, "-out", exported}); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "embed")
	if out, err := exec.Command("go", "build", "-o", bin, "../../examples/embed").CombinedOutput(); err != nil {
		t.Fatalf("building examples/embed: %v\n%s", err, out)
	}
	for _, file := range []string{ckpt, exported} {
		out := filepath.Join(t.TempDir(), "emb")
		if err := runEval([]string{"-checkpoint", file, "-data", "folder-unlabeled", "-data-dir", root, "embed", "-out", out}); err != nil {
			t.Fatal(err)
		}
		rows, dim, want := readNpyF32(t, filepath.Join(out, "features_train.npy"))
		names, err := os.ReadFile(filepath.Join(out, "names_train.txt"))
		if err != nil {
			t.Fatal(err)
		}
		paths := strings.Fields(string(names))
		if rows != 5 || len(paths) != rows {
			t.Fatalf("embed wrote %d rows and %d names, want 5", rows, len(paths))
		}
		got, err := exec.Command(bin, append([]string{file}, paths...)...).Output()
		if err != nil {
			t.Fatalf("examples/embed: %v", err)
		}
		lines := strings.Split(strings.TrimSpace(string(got)), "\n")
		if len(lines) != rows {
			t.Fatalf("examples/embed printed %d rows, want %d", len(lines), rows)
		}
		for i, line := range lines {
			f := strings.Fields(line)
			if len(f) != dim+1 || f[0] != paths[i] {
				t.Fatalf("row %d: %d fields starting %q, want %s and %d values", i, len(f), f[0], paths[i], dim)
			}
			var diff, norm float64
			for j, s := range f[1:] {
				v, err := strconv.ParseFloat(s, 32)
				if err != nil {
					t.Fatal(err)
				}
				w := float64(want[i*dim+j])
				diff += (v - w) * (v - w)
				norm += w * w
			}
			// The same preprocessing and network; only the batch's
			// composition differs, which may change rounding.
			if rel := math.Sqrt(diff / norm); !(rel < 1e-5) {
				t.Errorf("%s row %d (%s): relative difference %.2g from bt eval embed", filepath.Base(file), i, paths[i], rel)
			}
		}
	}
}
