package train

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"maps"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"unsafe"

	"github.com/nlpodyssey/safetensors"

	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/robustio"
	"github.com/bt-org/bt/internal/strictjson"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
)

// checkpointFormat names the layout of bt's checkpoints in their metadata.
// Version 2 added the checksum and strictly decoded settings; version 1
// files are refused, since nothing in them can be verified.
const checkpointFormat = "bt-checkpoint-2"

// RunState is everything besides tensors that a resumed run needs to
// continue exactly: the configuration and the position in the data.
type RunState struct {
	Config Config `json:"config"` // resolved
	Step   int    `json:"step"`   // steps completed
	// Dataset describes the training data; nil in checkpoints from before
	// it was recorded.
	Dataset *pipeline.Fingerprint `json:"dataset,omitempty"`
}

// Checkpoint is a checkpoint file read into memory: a run's (State and
// Opt set) or a backbone alone (ExportBackbone's, or a converted
// torchvision state dict).
type Checkpoint struct {
	Path  string
	State RunState
	// Model and Data are the network and the data it was trained on: from
	// the run's configuration, or from an export's metadata; Model.Arch
	// is "" for a file bt did not write.
	Model   ModelConfig
	Data    DataConfig
	Opt     *optim.State // nil in a backbone-only file
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
//
// Every value is checked before anything is written: a tensor holding NaN or
// infinity is an error wrapping ErrNonFinite, and path is left as it was.
// The check runs on the host over the values the checkpoint downloads
// anyway, so it costs the device nothing.
func SaveCheckpoint(path string, m *Model, opt optim.Optimizer, st RunState) error {
	views := map[string]f32View{}
	for _, nt := range m.State() {
		v, err := nt.Tensor.Download()
		if err != nil {
			return fmt.Errorf("train: checkpoint %s: %s: %w", path, nt.Name, err)
		}
		views[nt.Name] = f32View{shapeOf(nt.Tensor.Shape), v}
	}
	meta := map[string]string{"format": checkpointFormat}
	if opt != nil {
		state, err := opt.State()
		if err != nil {
			return fmt.Errorf("train: checkpoint %s: optimiser state: %w", path, err)
		}
		for name, v := range state.Tensors {
			views["optimizer."+name] = f32View{[]uint64{uint64(len(v))}, v}
		}
		meta["optimizer"] = string(state.Kind)
		meta["optimizer_step"] = fmt.Sprint(state.Step)
	}
	for _, name := range slices.Sorted(maps.Keys(views)) {
		if bad := countNonFinite(views[name].data); bad > 0 {
			return fmt.Errorf("train: checkpoint %s at step %d not written: %s holds %d non-finite values (%w)", path, st.Step, name, bad, ErrNonFinite)
		}
	}
	b, err := json.Marshal(st)
	if err != nil {
		return err
	}
	meta["run"] = string(b)
	return writeTensors(path, views, meta)
}

// writeTensors stores the checksum of views and meta in meta, then writes
// both atomically.
func writeTensors(path string, views map[string]f32View, meta map[string]string) error {
	vs := make(map[string]safetensors.View, len(views))
	for k, v := range views {
		vs[k] = v
	}
	meta["checksum"] = checksum(vs, meta)
	return writeAtomic(path, func(f *os.File) error { return safetensors.SerializeToWriter(views, meta, f) })
}

// checksum is the CRC-32C of a file's metadata (all but the checksum
// itself) and its tensors' names, types, shapes and bytes, in name order:
// any change to the settings or the values changes it. CRC-32C rather than
// a cryptographic hash because it guards against corruption, not forgery,
// and runs at memory speed on multi-GiB checkpoints.
func checksum(views map[string]safetensors.View, meta map[string]string) string {
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		if k != "checksum" {
			fmt.Fprintf(h, "%q=%q\n", k, meta[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(views)) {
		v := views[k]
		fmt.Fprintf(h, "%q %v %v %d\n", k, v.DType(), v.Shape(), v.DataLen())
		h.Write(v.Data())
	}
	return fmt.Sprintf("crc32c:%08x", h.Sum32())
}

// countNonFinite counts the NaN and infinite values of v.
func countNonFinite(v []float32) int {
	n := 0
	for _, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			n++
		}
	}
	return n
}

// ExportBackbone writes the backbone alone, with torchvision's names and no
// prefix, as the official code's resnet50.pth holds it: PyTorch users load
// it with safetensors.torch.load_file and load_state_dict(strict=False)
// (the file has no fc layer). Its metadata records what rebuilding the
// network and its input takes: the architecture, stem (a small stem is a
// 3×3 stride-1 conv1 and no max-pool), input channels, the
// preprocessing's normalisation and size, and, for bt, the model and data
// settings as JSON.
func ExportBackbone(path string, m *Model, data DataConfig) error {
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
	ev, err := data.EvalView()
	if err != nil {
		return err
	}
	mc, err := json.Marshal(m.Config)
	if err != nil {
		return err
	}
	dc, err := json.Marshal(data)
	if err != nil {
		return err
	}
	meta := map[string]string{"format": exportFormat, "arch": m.Config.Arch, "stem": string(m.Backbone.Stem),
		"maxpool": fmt.Sprint(m.Backbone.Stem == models.ImageNetStem), "in_channels": fmt.Sprint(m.Config.InChannels),
		"mean": fmt.Sprint(ev.Mean), "std": fmt.Sprint(ev.Std), "size": fmt.Sprint(ev.Size),
		"model": string(mc), "data": string(dc)}
	return writeTensors(path, views, meta)
}

// exportFormat names ExportBackbone's files in their metadata.
const exportFormat = "torchvision-resnet-backbone"

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
		return fmt.Errorf("train: writing %s: %w", path, err)
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
	if err := robustio.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("train: writing %s: %w", path, err)
	}
	return nil
}

// LoadCheckpoint reads a checkpoint written by SaveCheckpoint, or a
// backbone alone (ExportBackbone's output, or a torchvision state dict
// converted to safetensors). A file that carries a checksum must match it,
// and a bt checkpoint must carry one; its settings are decoded strictly
// (a key that is misspelt or missing is an error), so a damaged file is
// refused rather than resumed with defaults.
func LoadCheckpoint(path string) (*Checkpoint, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("train: %w", err)
	}
	return parseCheckpoint(path, b)
}

func parseCheckpoint(path string, b []byte) (*Checkpoint, error) {
	st, err := safetensors.Deserialize(b)
	if err != nil {
		if name, why := badTensor(b); name != "" {
			return nil, fmt.Errorf("train: %s is damaged: tensor %s %s", path, name, why)
		}
		return nil, fmt.Errorf("train: %s is not a readable safetensors file: %v", path, err)
	}
	c := &Checkpoint{Path: path, tensors: map[string]safetensors.TensorView{}}
	views := map[string]safetensors.View{}
	for _, nt := range st.Tensors() {
		c.tensors[nt.Name] = nt.TensorView
		views[nt.Name] = nt.TensorView
	}
	_, md, err := safetensors.ReadMetadata(b)
	if err != nil {
		return nil, fmt.Errorf("train: %s: %v", path, err)
	}
	meta := md.Metadata()
	sum, hasSum := meta["checksum"]
	switch {
	case meta["format"] == "bt-checkpoint-1":
		return nil, fmt.Errorf("train: %s was written by an earlier bt (bt-checkpoint-1) with no checksum and loosely read settings; it cannot be verified. Export its backbone with that version, or train again", path)
	case (meta["format"] == checkpointFormat || meta["format"] == exportFormat) && !hasSum:
		return nil, fmt.Errorf("train: %s: a bt checkpoint without its checksum; the file is damaged", path)
	case hasSum && sum != checksum(views, meta):
		return nil, fmt.Errorf("train: %s is damaged: its checksum %s does not match its contents (%s)", path, sum, checksum(views, meta))
	}
	if run, ok := meta["run"]; ok {
		if err := strictjson.Decode([]byte(run), &c.State); err != nil {
			return nil, fmt.Errorf("train: %s: its run settings are not valid: %v", path, err)
		}
		c.Model, c.Data = c.State.Config.Model, c.State.Config.Data
	}
	for key, v := range map[string]any{"model": &c.Model, "data": &c.Data} {
		if js, ok := meta[key]; ok {
			if err := strictjson.Decode([]byte(js), v); err != nil {
				return nil, fmt.Errorf("train: %s: its %s settings are not valid: %v", path, key, err)
			}
		}
	}
	if kind, ok := meta["optimizer"]; ok {
		c.Opt = &optim.State{Kind: optim.Kind(kind), Tensors: map[string][]float32{}}
		if _, err := fmt.Sscan(meta["optimizer_step"], &c.Opt.Step); err != nil {
			return nil, fmt.Errorf("train: %s: optimizer_step %q is not a number", path, meta["optimizer_step"])
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

// badTensor finds, in a safetensors file the library refuses, the first
// tensor (by name) whose shape does not fit the bytes its offsets give it,
// and says how; "" when the header cannot be read that far or every tensor
// fits.
func badTensor(b []byte) (name, why string) {
	if len(b) < 8 {
		return "", ""
	}
	n := binary.LittleEndian.Uint64(b)
	if n > uint64(len(b)-8) {
		return "", ""
	}
	var header map[string]json.RawMessage
	if json.Unmarshal(b[8:8+n], &header) != nil {
		return "", ""
	}
	sizes := map[string]uint64{"F64": 8, "I64": 8, "U64": 8, "F32": 4, "I32": 4, "U32": 4, "F16": 2, "BF16": 2, "I16": 2, "U16": 2, "I8": 1, "U8": 1, "BOOL": 1}
	for _, k := range slices.Sorted(maps.Keys(header)) {
		var t struct {
			DType   string   `json:"dtype"`
			Shape   []uint64 `json:"shape"`
			Offsets []uint64 `json:"data_offsets"`
		}
		if k == "__metadata__" || json.Unmarshal(header[k], &t) != nil || len(t.Offsets) != 2 || sizes[t.DType] == 0 {
			continue
		}
		want := sizes[t.DType]
		for _, d := range t.Shape {
			want *= d
		}
		if have := t.Offsets[1] - t.Offsets[0]; t.Offsets[1] < t.Offsets[0] || have != want {
			return k, fmt.Sprintf("has shape %v of %s (%d bytes), but its offsets %v hold %d bytes", t.Shape, t.DType, want, t.Offsets, int64(t.Offsets[1])-int64(t.Offsets[0]))
		}
	}
	return "", ""
}

// Names lists the file's tensors, sorted.
func (c *Checkpoint) Names() []string {
	names := make([]string, 0, len(c.tensors))
	for n := range c.tensors {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Tensor returns the values of the named float32 tensor, or nil when the
// file holds no such tensor.
func (c *Checkpoint) Tensor(name string) []float32 {
	v, err := c.floats(name, nil)
	if err != nil {
		return nil
	}
	return v
}

// floats returns the named tensor's values, checking its shape when want is
// not nil.
func (c *Checkpoint) floats(name string, want []int) ([]float32, error) {
	tv, ok := c.tensors[name]
	if !ok {
		return nil, fmt.Errorf("train: %s has no tensor %q", c.Path, name)
	}
	if tv.DType() != safetensors.F32 {
		return nil, fmt.Errorf("train: %s: tensor %q is %s; bt reads float32", c.Path, name, tv.DType())
	}
	if want != nil && !slices.Equal(tv.Shape(), shapeOf(want)) {
		return nil, fmt.Errorf("train: %s: tensor %q has shape %v, the model needs %v", c.Path, name, tv.Shape(), want)
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
func (c *Checkpoint) Restore(m *Model, opt optim.Optimizer) error {
	if err := c.loadInto(m.State()); err != nil {
		return err
	}
	if opt == nil {
		return nil
	}
	if c.Opt == nil {
		return fmt.Errorf("train: %s holds no optimiser state; it cannot resume a run (load it as weights instead)", c.Path)
	}
	if err := opt.SetState(c.Opt); err != nil {
		return fmt.Errorf("train: %s: %w", c.Path, err)
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

// Backbone builds the network c records and loads its backbone's weights
// and statistics, for evaluation or export.
func (c *Checkpoint) Backbone(d *gpu.Device) (*Model, error) {
	if c.Model.Arch == "" {
		return nil, fmt.Errorf("train: %s records no model settings: it was not written by bt pretrain or bt export", c.Path)
	}
	m, err := NewModel(d, c.Model)
	if err != nil {
		return nil, err
	}
	if err := c.RestoreBackbone(m); err != nil {
		m.Release()
		return nil, err
	}
	return m, nil
}

// Continues is the configuration that continues c's run, given the one a
// caller asks for: c's own, with cfg's Epochs and Steps (a run may be
// extended) and Data.Workers and Data.AugmentOn (where the views are
// augmented changes none of their draws). What cfg leaves to the data,
// Model.Stem, Model.InChannels, Data.Augment and Data.Validation.Images
// when empty, takes the run's decision. Any other difference is an error naming it: it would
// not be the same run.
func (c *Checkpoint) Continues(cfg Config) (Config, error) {
	run := c.State.Config
	if c.Opt == nil || run.Model.Arch == "" {
		return Config{}, fmt.Errorf("train: %s holds no run to continue (no settings or no optimiser state); load it as weights instead", c.Path)
	}
	if cfg.Model.Stem == "" {
		cfg.Model.Stem = run.Model.Stem
	}
	if cfg.Model.InChannels == 0 {
		cfg.Model.InChannels = run.Model.InChannels
	}
	if cfg.Data.Augment == "" {
		cfg.Data.Augment = run.Data.Augment
	}
	if cfg.Data.Validation.Images == 0 {
		cfg.Data.Validation.Images = run.Data.Validation.Images
	}
	run.Epochs, run.Steps, run.Data.Workers, run.Data.AugmentOn = cfg.Epochs, cfg.Steps, cfg.Data.Workers, cfg.Data.AugmentOn
	if run != cfg {
		return Config{}, fmt.Errorf("train: %s is another run's: its %s differ; only the epochs, steps, workers and augmentation place may change", c.Path, strings.Join(differences("", reflect.ValueOf(run), reflect.ValueOf(cfg)), ", "))
	}
	return cfg, nil
}

// differences names the fields in which a and b, values of one struct
// type, differ, by their Go names from the top (Schedule.Multiplier).
func differences(prefix string, a, b reflect.Value) []string {
	if a.Kind() != reflect.Struct {
		if a.Equal(b) {
			return nil
		}
		return []string{strings.TrimSuffix(prefix, ".")}
	}
	var names []string
	for i := range a.NumField() {
		names = append(names, differences(prefix+a.Type().Field(i).Name+".", a.Field(i), b.Field(i))...)
	}
	return names
}

// DefaultKeep is how many checkpoints a run keeps unless told otherwise.
const DefaultKeep = 3

// Latest is the name under which a run directory's newest checkpoint is
// always found.
const Latest = "checkpoint.safetensors"

// Checkpoints is a run directory's checkpoints: each step's own file,
// checkpoint-<step>.safetensors, with checkpoint.safetensors a hard link to
// the newest, and only the newest Keep kept. A file is complete before it
// is linked, and earlier ones stay until a later one is, so the guard can
// always name a checkpoint that is really there and really finite.
type Checkpoints struct {
	Dir  string
	Keep int // 0: DefaultKeep
}

// Path is the file of step's checkpoint.
func (c Checkpoints) Path(step int) string {
	return filepath.Join(c.Dir, fmt.Sprintf("checkpoint-%d.safetensors", step))
}

// Save writes st.Step's checkpoint, points Latest at it and removes the
// oldest beyond Keep; it returns the file written.
func (c Checkpoints) Save(m *Model, opt optim.Optimizer, st RunState) (string, error) {
	path := c.Path(st.Step)
	if err := SaveCheckpoint(path, m, opt, st); err != nil {
		return "", err
	}
	if err := linkAtomic(path, filepath.Join(c.Dir, Latest)); err != nil {
		return "", err
	}
	steps, err := c.Steps()
	if err != nil {
		return "", err
	}
	keep := c.Keep
	if keep <= 0 {
		keep = DefaultKeep
	}
	for _, s := range steps[:max(len(steps)-keep, 0)] {
		if s != st.Step {
			if err := robustio.Remove(c.Path(s)); err != nil {
				return "", err
			}
		}
	}
	return path, nil
}

// Steps lists the steps that have a checkpoint file, in order.
func (c Checkpoints) Steps() ([]int, error) {
	names, err := filepath.Glob(filepath.Join(c.Dir, "checkpoint-*.safetensors"))
	if err != nil {
		return nil, err
	}
	var steps []int
	for _, n := range names {
		var s int
		if _, err := fmt.Sscanf(filepath.Base(n), "checkpoint-%d.safetensors", &s); err == nil && c.Path(s) == n {
			steps = append(steps, s)
		}
	}
	slices.Sort(steps)
	return steps, nil
}

// linkAtomic makes dst another name of src, replacing dst in one rename.
// Where the file system has no hard links it copies instead.
func linkAtomic(src, dst string) error {
	tmp := dst + ".link"
	os.Remove(tmp)
	if err := os.Link(src, tmp); err != nil {
		b, rerr := os.ReadFile(src)
		if rerr != nil {
			return rerr
		}
		return writeAtomic(dst, func(f *os.File) error { _, err := f.Write(b); return err })
	}
	if err := robustio.Rename(tmp, dst); err != nil {
		os.Remove(tmp)
		return err
	}
	return nil
}
