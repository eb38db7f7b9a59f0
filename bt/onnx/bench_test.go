package onnx_test

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/bt-org/bt/bt/encoder"
	"github.com/bt-org/bt/bt/onnx"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/models"
)

// BenchmarkEmbed measures images/s of one backbone (ResNet-18 with the
// ImageNet stem at 224 px unless BT_BENCH_ARCH, BT_BENCH_SIZE say
// otherwise) in batches of 16, in ONNX Runtime on the CPU with BatchNorm
// folded and as nodes, and in bt's encoder on the adapter, on the same
// preprocessed images. BT_BENCH_THREADS sets ONNX Runtime's threads (0:
// one per core).
func BenchmarkEmbed(b *testing.B) {
	arch, size, threads := "resnet18", 224, 0
	if v := os.Getenv("BT_BENCH_ARCH"); v != "" {
		arch = v
	}
	for name, p := range map[string]*int{"BT_BENCH_SIZE": &size, "BT_BENCH_THREADS": &threads} {
		if v := os.Getenv(name); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil {
				b.Fatalf("%s=%q is not a number", name, v)
			}
			*p = n
		}
	}
	const batch = 16
	if _, err := onnx.LibraryPath(); err != nil {
		b.Skip(err)
	}
	d := gputest.Device(b)
	stem := models.ImageNetStem
	if size < 64 {
		stem = models.SmallStem
	}
	cfg := train.DefaultConfig()
	cfg.Data.Name, cfg.Data.Augment, cfg.Data.Size = "synthetic", "imagenet", size
	cfg.Model.Arch, cfg.Model.Stem = arch, stem
	rc, err := cfg.Resolve()
	if err != nil {
		b.Fatal(err)
	}
	cfg = rc.Config()
	m, err := train.NewModel(d, cfg.Model)
	if err != nil {
		b.Fatal(err)
	}
	dir := b.TempDir()
	ckpt := filepath.Join(dir, "backbone.safetensors")
	err = train.ExportBackbone(ckpt, m, cfg.Data)
	m.Release()
	if err != nil {
		b.Fatal(err)
	}
	c, err := train.LoadCheckpoint(ckpt)
	if err != nil {
		b.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]float32, batch*3*size*size)
	for i := range x {
		x[i] = float32(rng.NormFloat64())
	}
	report := func(b *testing.B) {
		b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "images/s")
	}
	for _, bn := range []onnx.BatchNorm{onnx.FoldBN, onnx.BatchNormNodes} {
		b.Run(fmt.Sprintf("%s/%dpx/onnxruntime/%s", arch, size, bn), func(b *testing.B) {
			path := filepath.Join(dir, string(bn)+".onnx")
			if err := onnx.Write(path, c, onnx.Options{BatchNorm: bn}); err != nil {
				b.Fatal(err)
			}
			s, err := onnx.Open(path, onnx.SessionOptions{Threads: threads})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			for b.Loop() {
				if _, err := s.Run(x, batch); err != nil {
					b.Fatal(err)
				}
			}
			report(b)
		})
	}
	b.Run(fmt.Sprintf("%s/%dpx/bt/%s", arch, size, d.Info.Name), func(b *testing.B) {
		enc, err := encoder.Load(d, ckpt)
		if err != nil {
			b.Fatal(err)
		}
		defer enc.Release()
		for b.Loop() {
			if _, err := enc.EmbedPrepared(x, batch); err != nil {
				b.Fatal(err)
			}
		}
		report(b)
	})
}
