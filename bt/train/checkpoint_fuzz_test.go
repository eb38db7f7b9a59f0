package train

import (
	"encoding/binary"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"testing"
)

// smallCheckpoint is a small checkpoint as SaveCheckpoint writes it, made
// without a device: model settings, run settings and two tensors.
func smallCheckpoint(f testing.TB) []byte {
	f.Helper()
	cfg := DefaultConfig()
	cfg.Model = ModelConfig{Arch: "tiny", InChannels: 1, Projector: "8-8", Seed: 3}
	cfg.Batch, cfg.Steps = 32, 100
	st := RunState{Config: cfg, Step: 7}
	run, err := json.Marshal(st)
	if err != nil {
		f.Fatal(err)
	}
	views := map[string]f32View{
		"backbone.conv1.weight": {[]uint64{2, 3}, []float32{1, 2, 3, 4, 5, 6}},
		"optimizer.momentum.0":  {[]uint64{2}, []float32{-1, 0.5}},
	}
	meta := map[string]string{"format": checkpointFormat, "run": string(run), "optimizer": "lars", "optimizer_step": "7"}
	path := filepath.Join(f.TempDir(), "c.safetensors")
	if err := writeTensors(path, views, meta); err != nil {
		f.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		f.Fatal(err)
	}
	return b
}

// FuzzCheckpointHeader changes one byte of a checkpoint's header (its
// length, the tensor table, the settings, the checksum) and loads it: the
// file must be refused, or load to exactly what was saved (a change that
// means nothing, such as one padding space for another). A damaged header
// never resumes a run silently.
func FuzzCheckpointHeader(f *testing.F) {
	good := smallCheckpoint(f)
	want, err := parseCheckpoint("good", good)
	if err != nil {
		f.Fatal(err)
	}
	header := 8 + int(binary.LittleEndian.Uint64(good))
	for _, pos := range []uint{0, 3, 12, 40, uint(header / 2), uint(header - 20), uint(header - 1)} {
		f.Add(pos, byte('W'))
		f.Add(pos, byte('"'))
		f.Add(pos, byte('1'))
	}
	f.Fuzz(func(t *testing.T, pos uint, b byte) {
		bad := append([]byte{}, good...)
		i := int(pos % uint(header))
		if bad[i] == b {
			return // not a change
		}
		bad[i] = b
		got, err := parseCheckpoint("bad", bad)
		if err != nil {
			return
		}
		if !reflect.DeepEqual(got.State, want.State) || !reflect.DeepEqual(got.Opt, want.Opt) || len(got.tensors) != len(want.tensors) {
			t.Fatalf("byte %d → %q loaded a different checkpoint: %+v", i, b, got.State)
		}
		for name, tv := range want.tensors {
			g, ok := got.tensors[name]
			if !ok || !reflect.DeepEqual(g.Shape(), tv.Shape()) || string(g.Data()) != string(tv.Data()) {
				t.Fatalf("byte %d → %q changed tensor %s", i, b, name)
			}
		}
	})
}

// TestCheckpointChecksum: every single-byte change of the tensor data is
// caught by the checksum.
func TestCheckpointChecksum(t *testing.T) {
	good := smallCheckpoint(t)
	header := 8 + int(binary.LittleEndian.Uint64(good))
	if _, err := parseCheckpoint("good", good); err != nil {
		t.Fatal(err)
	}
	for i := header; i < len(good); i++ {
		bad := append([]byte{}, good...)
		bad[i] ^= 0x01
		if _, err := parseCheckpoint("bad", bad); err == nil {
			t.Errorf("flipping a bit of data byte %d went unnoticed", i-header)
		}
	}
}
