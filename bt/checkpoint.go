package bt

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unsafe"

	"github.com/nlpodyssey/safetensors"
)

// checkpointFormat names the layout of bt's checkpoints in their metadata.
const checkpointFormat = "bt-checkpoint-1"

// RunState is everything besides tensors that a resumed run needs to
// continue exactly: the configuration and the position in the data.
type RunState struct {
	Model ModelConfig     `json:"model"`
	Train json.RawMessage `json:"train,omitempty"` // the trainer's flags, as the CLI wrote them
	Step  int             `json:"step"`            // steps completed
}

// Checkpoint is a checkpoint file read into memory.
type Checkpoint struct {
	Path    string
	State   RunState
	Opt     *OptimizerState // nil in a backbone-only file
	tensors map[string]safetensors.TensorView
}

// f32View is a float32 tensor as safetensors serialises it.
type f32View struct {
	shape []uint64
	data  []float32
}

func (v f32View) DType() safetensors.DType { return safetensors.F32 }
func (v f32View) Shape() []uint64          { return v.shape }
func (v f32View) Data() []byte {
	if len(v.data) == 0 {
		return nil
	}
	return unsafe.Slice((*byte)(unsafe.Pointer(&v.data[0])), 4*len(v.data))
}
func (v f32View) DataLen() uint64 { return 4 * uint64(len(v.data)) }

func shapeOf(s []int) []uint64 {
	out := make([]uint64, len(s))
	for i, v := range s {
		out[i] = uint64(v)
	}
	return out
}

// SaveCheckpoint writes the model's state dict (backbone.* with
// torchvision's names, projector.*), the optimiser's state (optimizer.*)
// and st into path as safetensors. It writes a temporary file beside path
// and renames it over path, so a crash never leaves a torn checkpoint.
func SaveCheckpoint(path string, m *Model, opt Optimizer, st RunState) error {
	views := map[string]f32View{}
	for _, nt := range m.State() {
		v, err := nt.Tensor.Download()
		if err != nil {
			return fmt.Errorf("bt: checkpoint %s: %s: %w", path, nt.Name, err)
		}
		views[nt.Name] = f32View{shapeOf(nt.Tensor.Shape), v}
	}
	meta := map[string]string{"format": checkpointFormat}
	if opt != nil {
		state, err := opt.State()
		if err != nil {
			return fmt.Errorf("bt: checkpoint %s: optimiser state: %w", path, err)
		}
		for name, v := range state.Tensors {
			views["optimizer."+name] = f32View{[]uint64{uint64(len(v))}, v}
		}
		meta["optimizer"] = state.Kind
		meta["optimizer_step"] = fmt.Sprint(state.Step)
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	meta["run"] = string(b)
	return writeAtomic(path, func(f *os.File) error { return safetensors.SerializeToWriter(views, meta, f) })
}

// ExportBackbone writes the backbone alone, with torchvision's names and no
// prefix, as the official code's resnet50.pth holds it: PyTorch users load
// it with safetensors.torch.load_file and load_state_dict(strict=False)
// (the file has no fc layer).
func ExportBackbone(path string, m *Model) error {
	views := map[string]f32View{}
	for _, nt := range m.State() {
		name, ok := strings.CutPrefix(nt.Name, "backbone.")
		if !ok {
			continue
		}
		v, err := nt.Tensor.Download()
		if err != nil {
			return err
		}
		views[name] = f32View{shapeOf(nt.Tensor.Shape), v}
	}
	meta := map[string]string{"format": "torchvision-resnet-backbone", "arch": m.Config.Arch}
	return writeAtomic(path, func(f *os.File) error { return safetensors.SerializeToWriter(views, meta, f) })
}

func writeAtomic(path string, write func(f *os.File) error) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	if err := f.Chmod(0o644); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := write(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return fmt.Errorf("bt: writing %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	return os.Rename(tmp, path)
}

// LoadCheckpoint reads a checkpoint written by SaveCheckpoint, or a
// backbone alone (ExportBackbone's output, or a torchvision state dict
// converted to safetensors).
func LoadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("bt: %w", err)
	}
	st, err := safetensors.Deserialize(b)
	if err != nil {
		return nil, fmt.Errorf("bt: %s is not a readable safetensors file: %v", path, err)
	}
	c := &Checkpoint{Path: path, tensors: map[string]safetensors.TensorView{}}
	for _, nt := range st.Tensors() {
		c.tensors[nt.Name] = nt.TensorView
	}
	_, md, err := safetensors.ReadMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("bt: %s: %v", path, err)
	}
	meta := md.Metadata()
	if run, ok := meta["run"]; ok {
		if err := json.Unmarshal([]byte(run), &c.State); err != nil {
			return nil, fmt.Errorf("bt: %s: its run metadata is not valid: %v", path, err)
		}
	}
	if kind, ok := meta["optimizer"]; ok {
		c.Opt = &OptimizerState{Kind: kind, Tensors: map[string][]float32{}}
		if _, err := fmt.Sscan(meta["optimizer_step"], &c.Opt.Step); err != nil {
			return nil, fmt.Errorf("bt: %s: optimizer_step %q is not a number", path, meta["optimizer_step"])
		}
		for name := range c.tensors {
			if rest, ok := strings.CutPrefix(name, "optimizer."); ok {
				v, err := c.floats(name, nil)
				if err != nil {
					return nil, err
				}
				c.Opt.Tensors[rest] = v
			}
		}
	}
	return c, nil
}

// floats returns the named tensor's values, checking its shape when want is
// not nil.
func (c *Checkpoint) floats(name string, want []int) ([]float32, error) {
	tv, ok := c.tensors[name]
	if !ok {
		return nil, fmt.Errorf("bt: %s has no tensor %q", c.Path, name)
	}
	if tv.DType() != safetensors.F32 {
		return nil, fmt.Errorf("bt: %s: tensor %q is %s; bt reads float32", c.Path, name, tv.DType())
	}
	if want != nil && !slices.Equal(tv.Shape(), shapeOf(want)) {
		return nil, fmt.Errorf("bt: %s: tensor %q has shape %v, the model needs %v", c.Path, name, tv.Shape(), want)
	}
	data := tv.Data()
	out := make([]float32, len(data)/4)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(unsafe.SliceData(out))), len(data)), data)
	return out, nil
}

// loadInto uploads every named tensor of ts from the checkpoint, under
// prefix+name (or name alone when the file holds a bare backbone).
func (c *Checkpoint) loadInto(ts []NamedTensor) error {
	for _, nt := range ts {
		name := nt.Name
		if _, ok := c.tensors[name]; !ok {
			if bare, ok := strings.CutPrefix(name, "backbone."); ok {
				if _, ok := c.tensors[bare]; ok {
					name = bare
				}
			}
		}
		v, err := c.floats(name, nt.Tensor.Shape)
		if err != nil {
			return err
		}
		if err := nt.Tensor.Upload(v); err != nil {
			return err
		}
	}
	return nil
}

// Restore loads the model's state and, when opt is not nil, the optimiser's.
func (c *Checkpoint) Restore(m *Model, opt Optimizer) error {
	if err := c.loadInto(m.State()); err != nil {
		return err
	}
	if opt == nil {
		return nil
	}
	if c.Opt == nil {
		return fmt.Errorf("bt: %s holds no optimiser state; it cannot resume a run (load it as weights instead)", c.Path)
	}
	if err := opt.SetState(c.Opt); err != nil {
		return fmt.Errorf("bt: %s: %w", c.Path, err)
	}
	return nil
}

// RestoreBackbone loads only the backbone's weights and statistics: from a
// bt checkpoint, an exported backbone, or a torchvision state dict.
func (c *Checkpoint) RestoreBackbone(m *Model) error {
	var ts []NamedTensor
	for _, nt := range m.State() {
		if strings.HasPrefix(nt.Name, "backbone.") {
			ts = append(ts, nt)
		}
	}
	return c.loadInto(ts)
}
