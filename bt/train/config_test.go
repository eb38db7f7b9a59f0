package train

import (
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bt-org/bt/pipeline"
)

// TestFitPreset: a folder of small images trains at their scale, not as
// 224-pixel ImageNet views, unless its Augment preset says so; the choice
// is reported.
func TestFitPreset(t *testing.T) {
	root := t.TempDir()
	for _, name := range []string{"a.png", "b.png"} {
		f, err := os.Create(filepath.Join(root, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := png.Encode(f, image.NewGray(image.Rect(0, 0, 20, 20))); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	data := DataConfig{Name: "folder-unlabeled", Dir: root, MaxPixels: -1}
	ds, err := data.Open("train")
	if err != nil {
		t.Fatal(err)
	}
	note, err := data.fitPreset(ds)
	if err != nil || data.Augment != "cifar" || !strings.Contains(note, "20×20") {
		t.Errorf("20-px images: preset %q, note %q, %v; want cifar and a note naming the size", data.Augment, note, err)
	}
	data.Augment = "imagenet"
	if note, err := data.fitPreset(ds); err != nil || data.Augment != "imagenet" || note != "" {
		t.Errorf("an explicit preset was changed to %q (note %q, %v)", data.Augment, note, err)
	}
	fashion := DataConfig{Name: "fashion-mnist"}
	if note, err := fashion.fitPreset(pipeline.Dataset(ds)); err != nil || fashion.Augment != "" || note != "" {
		t.Errorf("a data set with its own preset was given %q (%q, %v)", fashion.Augment, note, err)
	}
}

// TestViewStrength: the crop and jitter settings reach both views of every
// preset, 0 keeps the preset's, and values the views cannot take are
// refused by Validate, naming the setting.
func TestViewStrength(t *testing.T) {
	for _, tc := range []struct {
		preset          string
		cropMin, jitter float64
		wantErr         string
	}{
		{"imagenet", 0, 0, ""},
		{"imagenet", 0.2, 0.5, ""},
		{"fashion-mnist", 0.4, 1.5, ""},
		{"cifar", 1, 5, ""},
		{"imagenet", 1.5, 0, "smallest crop 1.5"},
		{"imagenet", 0, 6, "jitter strength 6"},
		{"imagenet", -0.1, 0, "smallest crop -0.1"},
	} {
		d := DataConfig{Augment: tc.preset, CropMin: tc.cropMin, Jitter: tc.jitter}
		c := DefaultConfig()
		c.Data = d
		c.Data.MaxBadFraction, c.Data.MaxPixels = 0.01, 1000
		err := c.Validate()
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%+v: Validate() = %v, want an error with %q", tc, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%+v: Validate() = %v", tc, err)
			continue
		}
		got, err := d.Views()
		if err != nil {
			t.Fatal(err)
		}
		want, err := pipeline.Preset(tc.preset)
		if err != nil {
			t.Fatal(err)
		}
		for i, pair := range [][2]pipeline.ViewConfig{{got.A, want.A}, {got.B, want.B}} {
			g, w := pair[0], pair[1]
			lo, k := w.Scale[0], 1.0
			if tc.cropMin > 0 {
				lo = tc.cropMin
			}
			if tc.jitter > 0 {
				k = tc.jitter
			}
			if g.Scale != [2]float64{lo, w.Scale[1]} || g.Brightness != k*w.Brightness || g.Contrast != k*w.Contrast ||
				g.Saturation != k*w.Saturation || g.Hue != k*w.Hue || g.JitterP != w.JitterP {
				t.Errorf("%+v: view %d: scale %v, jitter %v %v %v %v; want scale [%v %v], jitter ×%v of %v %v %v %v",
					tc, i, g.Scale, g.Brightness, g.Contrast, g.Saturation, g.Hue, lo, w.Scale[1], k, w.Brightness, w.Contrast, w.Saturation, w.Hue)
			}
		}
	}
}
