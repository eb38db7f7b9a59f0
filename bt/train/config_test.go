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
