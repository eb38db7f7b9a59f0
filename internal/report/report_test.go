package report

import (
	"image/png"
	"os"
	"path/filepath"
	"testing"
)

// TestHeatmap: the picture is drawn with its colour scale; a matrix of
// the wrong size is refused. Red (+1) and blue (−1) both appear.
func TestHeatmap(t *testing.T) {
	path := filepath.Join(t.TempDir(), "c.png")
	c := []float64{1, 0, -1, 0.5}
	if err := Heatmap(path, "C at step 10", c, 2); err != nil {
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
	var red, blue bool
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y += 2 {
		for x := b.Min.X; x < b.Max.X; x += 2 {
			r, g, bl, _ := img.At(x, y).RGBA()
			red = red || (r>>8 > 150 && g>>8 < 80 && bl>>8 < 80)
			blue = blue || (bl>>8 > 150 && r>>8 < 100 && g>>8 < 120)
		}
	}
	if !red || !blue {
		t.Errorf("the heat map lacks red (%v) or blue (%v)", red, blue)
	}
	if err := Heatmap(path, "", c, 3); err == nil {
		t.Error("a wrong size was accepted")
	}
}

func TestCurves(t *testing.T) {
	path := filepath.Join(t.TempDir(), "loss.png")
	s := Series{Name: "loss", X: []float64{1, 2, 3}, Y: []float64{3, 2, 1}}
	if err := Curves(path, "test", "step", "loss", s, Series{Name: "other", X: s.X, Y: s.X}); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Size() < 1000 {
		t.Fatalf("no plot written: %v %v", st, err)
	}
	if err := Curves(path, "test", "step", "loss", Series{Name: "bad", X: []float64{0}}); err == nil {
		t.Error("mismatched lengths were accepted")
	}
}
