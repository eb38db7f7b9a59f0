package train

import (
	"math"
	"path/filepath"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/models"
)

// TestTorchInterop: a PyTorch state dict (bt's tiny backbone, with the
// small stem), converted to safetensors as
// tools/reference/torchvision_to_safetensors.py does, loads into bt and
// gives PyTorch's eval-mode representations; exported again, it is the
// same tensors under the same names, which tools/reference/load_backbone.py
// loads back into PyTorch. tools/fixtures/interop.py writes the files.
func TestTorchInterop(t *testing.T) {
	d := gputest.Device(t)
	for _, tc := range []struct {
		name string
		mc   ModelConfig
	}{
		{"interop_tiny", ModelConfig{Arch: "tiny", Stem: models.SmallStem, InChannels: 1, Projector: "8", Seed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			torch, err := LoadCheckpoint(filepath.Join("testdata", tc.name+".safetensors"))
			if err != nil {
				t.Fatal(err)
			}
			m, err := NewModel(d, tc.mc)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Release()
			if err := torch.RestoreBackbone(m); err != nil {
				t.Fatal(err)
			}
			f := gputest.Fixture(t, filepath.Join("testdata", tc.name+".json"))
			x, err := f.Get("x")
			if err != nil {
				t.Fatal(err)
			}
			y, err := f.Get("y")
			if err != nil {
				t.Fatal(err)
			}
			got, err := represent(d, m.Backbone, kcheck.To32(x.Data), x.Shape[0], x.Shape[1], x.Shape[2], x.Shape[3], gpu.F32)
			if err != nil {
				t.Fatal(err)
			}
			var diff, norm float64
			for i, w := range y.Data {
				diff += (float64(got[i]) - w) * (float64(got[i]) - w)
				norm += w * w
			}
			if rel := math.Sqrt(diff / norm); !(rel < 1e-5) {
				t.Errorf("representations differ from PyTorch's by %.2g (relative)", rel)
			}

			path := filepath.Join(t.TempDir(), "export.safetensors")
			if err := ExportBackbone(path, m, DataConfig{Name: "synthetic", Size: 16}); err != nil {
				t.Fatal(err)
			}
			back, err := LoadCheckpoint(path)
			if err != nil {
				t.Fatal(err)
			}
			for name, tv := range back.tensors {
				orig, ok := torch.tensors[name]
				if !ok {
					t.Errorf("the export has %s, which PyTorch's state dict lacks", name)
					continue
				}
				if string(orig.Data()) != string(tv.Data()) {
					t.Errorf("%s differs from PyTorch's after the round trip", name)
				}
			}
			if len(back.tensors) != len(torch.tensors) {
				t.Errorf("the export has %d tensors, PyTorch's state dict %d", len(back.tensors), len(torch.tensors))
			}
		})
	}
}

// represent is the backbone's eval-mode representations of x [n, c, h, w]
// (bt/eval's Represent, which imports this package).
func represent(d *gpu.Device, backbone *models.ResNet, x []float32, n, c, h, w int, act gpu.DType) ([]float32, error) {
	xt, err := d.FromSlice(x, n, c, h, w)
	if err != nil {
		return nil, err
	}
	defer xt.Release()
	repr, err := d.NewTensor(n, backbone.Dim)
	if err != nil {
		return nil, err
	}
	defer repr.Release()
	p := models.NewPassOf(d, false, act)
	defer p.Release()
	if err := d.Run(func(r *gpu.Recorder) error { return backbone.Forward(r, p, repr, xt, n, h, w) }); err != nil {
		return nil, err
	}
	return repr.Download()
}
