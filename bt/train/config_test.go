package train

import (
	"encoding/json"
	"image"
	"image/png"
	"math"
	"os"
	"path/filepath"
	"slices"
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
		preset          pipeline.PresetName
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

// TestValidationSplit: a validation fraction splits the training images
// in two by its seed, the same images every time; the test split is left
// alone; a configuration without the setting (as written before it)
// reads as holding nothing out and writes nothing of it; values that
// cannot work, or would be ignored, are refused naming the setting; and
// a recorded size that the data no longer gives is refused.
func TestValidationSplit(t *testing.T) {
	data := DataConfig{Name: "synthetic", MaxBadFraction: 0.01, MaxPixels: 1000, Validation: Validation{Fraction: 0.1, Seed: 3}}
	all, err := DataConfig{Name: "synthetic", MaxPixels: 1000}.Open(TrainSplit)
	if err != nil {
		t.Fatal(err)
	}
	tr, err := data.openTrain()
	if err != nil {
		t.Fatal(err)
	}
	val, err := data.Open(ValidationSplit)
	if err != nil {
		t.Fatal(err)
	}
	want := int(math.Round(0.1 * float64(all.Len())))
	if val.Len() != want || tr.Len() != all.Len()-want || data.Validation.Images != want {
		t.Fatalf("train %d, validation %d, recorded %d of %d images; want %d held out", tr.Len(), val.Len(), data.Validation.Images, all.Len(), want)
	}
	held := map[int]bool{}
	for _, i := range val.(*pipeline.Subset).Indices {
		held[i] = true
	}
	for _, i := range tr.(*pipeline.Subset).Indices {
		if held[i] {
			t.Fatalf("image %d is in both the training and the validation split", i)
		}
	}
	again, err := data.Open(ValidationSplit)
	if err != nil || !slices.Equal(again.(*pipeline.Subset).Indices, val.(*pipeline.Subset).Indices) {
		t.Errorf("the recorded split drew other images the second time (%v)", err)
	}
	if test, err := data.Open(TestSplit); err != nil || test.Len() != 2000 {
		t.Errorf("the test split: %v images, %v; want all 2000", test, err)
	}
	if data.ChoiceSplit() != ValidationSplit || (DataConfig{}).ChoiceSplit() != TestSplit {
		t.Error("choices are not taken on the validation split where there is one, on test otherwise")
	}
	if _, err := (DataConfig{Name: "synthetic", MaxPixels: 1000}).Open(ValidationSplit); err == nil {
		t.Error("a validation split was opened from data that holds none out")
	}
	other := data
	other.Validation.Images = want + 1
	if _, err := other.Open(ValidationSplit); err == nil || !strings.Contains(err.Error(), "other data") {
		t.Errorf("a split recorded with %d images opened from data that gives %d: %v", want+1, want, err)
	}

	var old Config
	if err := json.Unmarshal([]byte(`{"data": {"name": "fashion-mnist"}, "batch": 256}`), &old); err != nil {
		t.Fatal(err)
	}
	if old.Data.Validation != (Validation{}) {
		t.Errorf("a configuration without a validation split reads as %+v", old.Data.Validation)
	}
	b, err := json.Marshal(DefaultConfig())
	if err != nil || strings.Contains(string(b), "validation") {
		t.Errorf("a configuration without a validation split writes %s (%v)", b, err)
	}
	for _, c := range []struct {
		v       Validation
		wantErr string
	}{
		{Validation{Fraction: 0.1}, ""},
		{Validation{Fraction: 0.5, Seed: 9, Images: 30000}, ""},
		{Validation{Fraction: 1}, "validation fraction 1"},
		{Validation{Fraction: -0.1}, "validation fraction -0.1"},
		{Validation{Fraction: math.NaN()}, "validation fraction NaN"},
		{Validation{Seed: 4}, "validation seed 4 without a validation fraction"},
	} {
		cfg := DefaultConfig()
		cfg.Data.Validation = c.v
		err := cfg.Validate()
		if (c.wantErr == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.wantErr)) {
			t.Errorf("%+v: Validate() = %v, want %q", c.v, err, c.wantErr)
		}
	}
}
