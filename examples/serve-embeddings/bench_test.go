package main

import (
	"bytes"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/bt-org/bt/bt/onnx"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/models"
)

// BenchmarkServe measures the service's images/s end to end (upload,
// JPEG decoding, preprocessing, ONNX Runtime, JSON) for a ResNet-18 with
// the ImageNet stem at 224 px, 16 photo-sized (320×240) JPEGs a request.
func BenchmarkServe(b *testing.B) {
	if _, err := onnx.LibraryPath(); errors.Is(err, onnx.ErrNoRuntime) {
		b.Skip(err)
	}
	d := gputest.Device(b)
	cfg := train.DefaultConfig()
	cfg.Data.Name, cfg.Data.Augment, cfg.Data.Size = "synthetic", "imagenet", 224
	cfg.Model.Arch, cfg.Model.Stem = "resnet18", models.ImageNetStem
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
	model := filepath.Join(dir, "model.onnx")
	if err := onnx.Write(model, c, onnx.Options{}); err != nil {
		b.Fatal(err)
	}
	s, err := onnx.Open(model, onnx.SessionOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(newServer(s, limits{Bytes: 32 << 20, Images: 64, Pixels: 40_000_000}))
	defer srv.Close()
	rng := rand.New(rand.NewPCG(3, 4))
	var files [][]byte
	for range 16 {
		img := image.NewRGBA(image.Rect(0, 0, 320, 240))
		for i := 0; i < len(img.Pix); i += 4 {
			img.Pix[i], img.Pix[i+1], img.Pix[i+2], img.Pix[i+3] = uint8(rng.IntN(256)), uint8(i>>8), uint8(i>>12), 255
		}
		img.Set(0, 0, color.White)
		var buf bytes.Buffer
		if err := jpeg.Encode(&buf, img, &jpeg.Options{Quality: 90}); err != nil {
			b.Fatal(err)
		}
		files = append(files, buf.Bytes())
	}
	ct, body := multipartBody(b, "image", files...)
	raw := body.Bytes()
	for b.Loop() {
		resp, err := http.Post(srv.URL+"/embed", ct, bytes.NewReader(raw))
		if err != nil {
			b.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			b.Fatalf("status %d", resp.StatusCode)
		}
	}
	b.ReportMetric(float64(b.N*len(files))/b.Elapsed().Seconds(), "images/s")
}
