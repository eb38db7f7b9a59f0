package encoder_test

import (
	"fmt"
	"image"
	"image/color"
	"log"
	"os"
	"path/filepath"

	"github.com/bt-org/bt/bt/encoder"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
)

// A backbone exported by bt export embeds images in a few lines. Here the
// file is made first from a freshly initialised tiny ResNet, for
// 28-pixel grayscale images as Fashion-MNIST's.
func Example() {
	d, err := gpu.Open(gpu.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Release()
	path := filepath.Join(os.TempDir(), "bt-example-backbone.safetensors")
	defer os.Remove(path)
	if err := exportTiny(d, path); err != nil {
		log.Fatal(err)
	}

	enc, err := encoder.Load(d, path)
	if err != nil {
		log.Fatal(err)
	}
	defer enc.Release()
	images := []image.Image{gradient(40, 30), gradient(28, 28)}
	z, err := enc.Embed(images)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d images → %d representations of %d values, preprocessed to %d px with %d channel\n",
		len(images), len(z), len(z[0]), enc.View.Size, enc.View.Channels())
	// Output:
	// 2 images → 2 representations of 64 values, preprocessed to 28 px with 1 channel
}

func exportTiny(d *gpu.Device, path string) error {
	rc, err := train.DefaultConfig().Resolve()
	if err != nil {
		return err
	}
	cfg := rc.Config()
	m, err := train.NewModel(d, cfg.Model)
	if err != nil {
		return err
	}
	defer m.Release()
	return train.ExportBackbone(path, m, cfg.Data)
}

// gradient is a w×h test picture.
func gradient(w, h int) image.Image {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.SetGray(x, y, color.Gray{uint8(255 * x / w)})
		}
	}
	return img
}
