package augment

import (
	"bytes"
	"image"
	"image/jpeg"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/pipeline"
)

// BenchmarkPairs224JPEGDevice is pipeline's BenchmarkPairs224JPEG with the
// views rendered on the device: one loader worker decodes and draws, the
// device augments each batch of 32 pairs, and the loop waits for it. On
// lavapipe the device is the CPU's other cores, so this measures lavapipe,
// not the CPU share a GPU would leave (pipeline's BenchmarkRaw224JPEG).
func BenchmarkPairs224JPEGDevice(b *testing.B) {
	d := gputest.Device(b)
	root := b.TempDir()
	syn, err := pipeline.NewSynthetic(pipeline.SyntheticConfig{Count: 32, Size: 500, Channels: 3, Classes: 10, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var m pipeline.Image
	for i := range 32 {
		if err := syn.Load(i, &m); err != nil {
			b.Fatal(err)
		}
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, m.ToNRGBA().SubImage(image.Rect(0, 0, 500, 375)), &jpeg.Options{Quality: 95}); err != nil {
			b.Fatal(err)
		}
		dir := filepath.Join(root, pipeline.SyntheticClasses[syn.Label(i)])
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)+".jpg"), buf.Bytes(), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	ds, err := pipeline.OpenFolder(root, pipeline.FolderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	cfg, _ := pipeline.Preset("imagenet")
	const batch = 32
	l, err := pipeline.NewLoader(ds, cfg, pipeline.LoaderConfig{BatchSize: batch, Workers: 1, Prefetch: 2, Seed: 1, Shuffle: true, DropLast: true, Raw: true})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	a, err := New(d, cfg)
	if err != nil {
		b.Fatal(err)
	}
	defer a.Close()
	var outs []*gpu.Tensor
	for range 2 {
		t, err := d.NewTensor(batch, 3, 224, 224)
		if err != nil {
			b.Fatal(err)
		}
		defer t.Release()
		outs = append(outs, t)
	}
	for b.Loop() {
		bt, err := l.Next()
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Run(func(r *gpu.Recorder) error { return a.Record(r, bt, outs...) }); err != nil {
			b.Fatal(err)
		}
		d.Sync()
		l.Recycle(bt)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "pairs/s")
}
