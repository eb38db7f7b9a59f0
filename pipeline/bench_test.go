package pipeline

import (
	"image"
	"path/filepath"
	"strconv"
	"testing"
)

// benchLoader measures the whole path a worker runs (load or decode, two
// views, normalisation into the batch) on one worker goroutine, so pairs/s
// is per core.
func benchLoader(b *testing.B, ds Dataset, aug Config) {
	benchLoaderCfg(b, ds, aug, false)
}

// benchLoaderCfg is benchLoader, raw (decode and draw only) when asked.
func benchLoaderCfg(b *testing.B, ds Dataset, aug Config, raw bool) {
	const batch = 32
	l, err := NewLoader(ds, aug, LoaderConfig{BatchSize: batch, Workers: 1, Prefetch: 2, Seed: 1, Shuffle: true, DropLast: true, Raw: raw})
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	for b.Loop() {
		bt, err := l.Next()
		if err != nil {
			b.Fatal(err)
		}
		l.Recycle(bt)
	}
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "pairs/s")
}

// cifarLike renders synthetic images once into the in-memory format of
// CIFAR (BenchmarkPairs28 does the same with IDX bytes), so that the
// benchmark does not time the procedural rendering.
func cifarLike(b *testing.B, n int) *CIFAR {
	syn, err := NewSynthetic(SyntheticConfig{Count: n, Size: 32, Channels: 3, Classes: 10, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	d := &CIFAR{file: "memory", classes: SyntheticClasses}
	var m Image
	for i := range n {
		must(b, syn.Load(i, &m))
		for _, v := range m.Pix {
			d.pix = append(d.pix, byte(v*255))
		}
		d.labels = append(d.labels, byte(syn.Label(i)))
	}
	return d
}

func BenchmarkPairs32(b *testing.B) {
	aug, _ := Preset("cifar")
	benchLoader(b, cifarLike(b, 512), aug)
}

func BenchmarkPairs28(b *testing.B) {
	syn, err := NewSynthetic(SyntheticConfig{Count: 512, Size: 28, Channels: 1, Classes: 10, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	d := &IDX{file: "memory", n: 512, h: 28, w: 28, classes: SyntheticClasses}
	var m Image
	for i := range 512 {
		must(b, syn.Load(i, &m))
		for _, v := range m.Pix {
			d.pix = append(d.pix, byte(v*255))
		}
		d.labels = append(d.labels, byte(syn.Label(i)))
	}
	aug, _ := Preset("fashion-mnist")
	benchLoader(b, d, aug)
}

// BenchmarkPairs224JPEG decodes 500×375 JPEGs (about ImageNet's average
// size) and draws two 224 px views with the paper's augmentations, with the
// build's JPEG decoder (JPEGDecoder; -tags nolibjpeg for image/jpeg).
func BenchmarkPairs224JPEG(b *testing.B) {
	b.Log("JPEG decoder:", JPEGDecoder)
	aug, _ := Preset("imagenet")
	benchLoader(b, jpegFolder(b), aug)
}

// BenchmarkRaw224JPEG is the CPU's share when a device augments: decode and
// draw only, what package augment's device path needs from each core.
func BenchmarkRaw224JPEG(b *testing.B) {
	b.Log("JPEG decoder:", JPEGDecoder)
	aug, _ := Preset("imagenet")
	benchLoaderCfg(b, jpegFolder(b), aug, true)
}

// BenchmarkPairs224JPEGSubset is BenchmarkPairs224JPEG on a subset of the
// folder (its images in another order), as bt eval's -labels and
// -eval-train make: the same fast path, so the same pairs/s.
func BenchmarkPairs224JPEGSubset(b *testing.B) {
	aug, _ := Preset("imagenet")
	benchLoader(b, jpegSubset(b), aug)
}

// BenchmarkRaw224JPEGSubset is BenchmarkRaw224JPEG on the same subset.
func BenchmarkRaw224JPEGSubset(b *testing.B) {
	aug, _ := Preset("imagenet")
	benchLoaderCfg(b, jpegSubset(b), aug, true)
}

// jpegSubset is jpegFolder's images in reverse order, as a Subset.
func jpegSubset(b *testing.B) Dataset {
	d := jpegFolder(b)
	idx := make([]int, d.Len())
	for i := range idx {
		idx[i] = d.Len() - 1 - i
	}
	s, err := NewSubset(d, idx)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// jpegFolder writes 32 synthetic 500×375 JPEGs (quality 95) into a class
// folder tree.
func jpegFolder(b *testing.B) *Folder {
	root := b.TempDir()
	syn, err := NewSynthetic(SyntheticConfig{Count: 32, Size: 500, Channels: 3, Classes: 10, Seed: 1})
	if err != nil {
		b.Fatal(err)
	}
	var m Image
	for i := range 32 {
		must(b, syn.Load(i, &m))
		img := m.ToNRGBA().SubImage(image.Rect(0, 0, 500, 375))
		writeImage(b, filepath.Join(root, SyntheticClasses[syn.Label(i)], strconv.Itoa(i)+".jpg"), encJPEG, img)
	}
	d, err := OpenFolder(root, FolderOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return d
}
