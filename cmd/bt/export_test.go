package main

import (
	"errors"
	"image"
	_ "image/png"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/onnx"
	"github.com/bt-org/bt/bt/train"
)

// TestExportONNX: bt export -format onnx writes a model whose outputs in
// ONNX Runtime, on image files, are the rows bt eval embed writes for the
// same files; conflicting or misplaced flags are refused before anything
// is written.
func TestExportONNX(t *testing.T) {
	root := t.TempDir()
	writeImages(t, root, 4)
	run := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(args("-out", run, "-steps", "2")); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(run, train.Latest)
	dir := t.TempDir()
	model := filepath.Join(dir, "backbone.onnx")

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-format", "tflite"}, `-format "tflite"`},
		{[]string{"-batchnorm", "nodes"}, "-batchnorm applies to -format onnx only"},
		{[]string{"-with-projector"}, "-with-projector applies to -format onnx only"},
		{[]string{"-format", "onnx", "-batchnorm", "fused"}, `BatchNorm "fused"`},
		{[]string{"-format", "onnx", "-adapter", "0"}, "-adapter"},
		{[]string{"-format", "onnx", "-out", filepath.Join(dir, "no", "such", "b.onnx")}, "does not exist"},
	} {
		a := append([]string{"-checkpoint", ckpt}, tc.args...)
		if !strings.Contains(strings.Join(tc.args, " "), "-out") {
			a = append(a, "-out", model)
		}
		if err := runExport(a); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("bt export %v: got %v, want an error saying %q", tc.args, err, tc.want)
		}
		if _, err := os.Stat(model); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("bt export %v wrote %s", tc.args, model)
		}
	}

	if err := runExport([]string{"-checkpoint", ckpt, "-format", "onnx", "-out", model}); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "emb")
	if err := runEval([]string{"-checkpoint", ckpt, "-data", "folder-unlabeled", "-data-dir", root, "embed", "-out", out}); err != nil {
		t.Fatal(err)
	}
	rows, dim, want := readNpyF32(t, filepath.Join(out, "features_train.npy"))
	names, err := os.ReadFile(filepath.Join(out, "names_train.txt"))
	if err != nil {
		t.Fatal(err)
	}
	paths := strings.Fields(string(names))
	if rows != 4 || len(paths) != rows {
		t.Fatalf("embed wrote %d rows and %d names, want 4", rows, len(paths))
	}

	if _, err := onnx.LibraryPath(); errors.Is(err, onnx.ErrNoRuntime) {
		t.Skipf("ONNX Runtime is not installed, so the export is not run: %v", err)
	}
	s, err := onnx.Open(model, onnx.SessionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	var images []image.Image
	for _, p := range paths {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		img, _, err := image.Decode(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, img)
	}
	got, err := s.Embed(images)
	if err != nil {
		t.Fatal(err)
	}
	if s.Widths[0] != dim {
		t.Fatalf("the ONNX model gives %d values, bt eval embed %d", s.Widths[0], dim)
	}
	for i := range rows {
		row := want[i*dim : (i+1)*dim]
		rms := 0.0
		for _, v := range row {
			rms += float64(v) * float64(v)
		}
		rms = math.Sqrt(rms / float64(dim))
		for j, w := range row {
			if e := math.Abs(float64(got[0][i][j]-w)) / max(math.Abs(float64(w)), rms, 1e-30); !(e <= 1e-4) {
				t.Fatalf("%s[%d]: ONNX Runtime %g, bt eval embed %g (relative error %.2g)", paths[i], j, got[0][i][j], w, e)
			}
		}
	}
}
