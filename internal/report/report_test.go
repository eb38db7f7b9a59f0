package report

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

func TestHeatmap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.png")
	c := []float64{1, 0, -1, 0.5}
	if err := Heatmap(path, c, 2, 3); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if b := img.Bounds(); b.Dx() != 6 || b.Dy() != 6 {
		t.Fatalf("size %v", b)
	}
	for _, tc := range []struct {
		x, y    int
		r, g, b uint32
	}{{0, 0, 255, 0, 0}, {4, 1, 255, 255, 255}, {1, 4, 0, 0, 255}} {
		r, g, b, _ := img.At(tc.x, tc.y).RGBA()
		if r>>8 != tc.r || g>>8 != tc.g || b>>8 != tc.b {
			t.Errorf("pixel (%d,%d) = %d,%d,%d, want %d,%d,%d", tc.x, tc.y, r>>8, g>>8, b>>8, tc.r, tc.g, tc.b)
		}
	}
	if err := Heatmap(path, c, 3, 1); err == nil {
		t.Error("a wrong size was accepted")
	}
}

func TestLossCurve(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loss.png")
	if err := LossCurve(path, "test", []int{0, 1, 2}, []float32{3, 2, 1}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() < 1000 {
		t.Fatalf("no plot written: %v %v", st, err)
	}
	if err := LossCurve(path, "test", []int{0}, nil); err == nil {
		t.Error("mismatched lengths were accepted")
	}
}
