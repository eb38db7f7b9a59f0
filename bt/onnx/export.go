// Package onnx writes a bt backbone as an ONNX model and runs such models
// with ONNX Runtime, so that what bt trained runs where ONNX runs (ONNX
// Runtime on CPU, CUDA, TensorRT, CoreML, DirectML or WebGPU; OpenVINO;
// TensorRT) without bt's WebGPU stack.
//
// The graph is the backbone in evaluation mode, exactly as bt's eval embed
// runs it: images [batch, C, Size, Size], preprocessed as the model's
// metadata says, to representations [batch, Dim], and optionally the
// projector's embeddings.
//
//	c, err := train.LoadCheckpoint("runs/demo/checkpoint.safetensors")
//	err = onnx.Write("backbone.onnx", c, onnx.Options{})
package onnx

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/onnxpb"
	"github.com/bt-org/bt/models"
)

// BatchNorm is how an export writes the network's BatchNorms.
type BatchNorm string

// FoldBN folds each BatchNorm's running statistics and affine parameters
// into the convolution (or Linear) before it, as a bias: one node fewer per
// unit. BatchNormNodes keeps them as BatchNormalization nodes, as a model
// converted from PyTorch has them before a runtime's own fusion.
const (
	FoldBN         BatchNorm = "fold"
	BatchNormNodes BatchNorm = "nodes"
)

// Opset is the ONNX operator set the exports use (ONNX 1.12, IR version 8):
// every operator in them is older, and every runtime of the last years
// reads it.
const (
	Opset     = 17
	irVersion = 8
)

// Input and output names of the graph.
const (
	InputName     = "images"          // [batch, C, Size, Size]
	OutputName    = "representations" // [batch, Dim]
	ProjectorName = "embeddings"      // [batch, projector width], with Options.Projector
)

// bnEps is the ε of every bt BatchNorm (layers.NewBatchNorm's, PyTorch's).
const bnEps = 1e-5

// Options chooses what an export holds.
type Options struct {
	BatchNorm BatchNorm // "" is FoldBN
	// Projector adds the projector's output, ProjectorName, beside the
	// representations; it needs a checkpoint of bt pretrain (an exported
	// backbone has no projector).
	Projector bool
}

// Metadata keys: the checkpoint's preprocessing, so that a program cannot
// feed the model images prepared another way. Mean and std are JSON arrays
// of one value per channel; pixels are scaled to [0, 1] first.
const (
	MetaSize      = "size"        // input height and width in pixels
	MetaChannels  = "in_channels" // 1 (grayscale) or 3 (RGB)
	MetaMean      = "mean"
	MetaStd       = "std"
	MetaView      = "view"      // the whole evaluation view (pipeline.ViewConfig) as JSON
	MetaArch      = "arch"      // tiny, resnet18, resnet34, resnet50
	MetaStem      = "stem"      // imagenet or small
	MetaBatchNorm = "batchnorm" // fold or nodes
	MetaModel     = "model"     // bt's model settings as JSON
)

// Write exports c's backbone to path as an ONNX model. Everything is
// checked before path is created; the file is written beside path and
// renamed over it, so a failed export leaves nothing half-written.
func Write(path string, c *train.Checkpoint, opt Options) error {
	b, err := Marshal(c, opt)
	if err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Dir(path), filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Chmod(tmp, 0o644)
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("onnx: writing %s: %w", path, err)
	}
	return nil
}

// Marshal returns c's backbone as a serialised ONNX ModelProto.
func Marshal(c *train.Checkpoint, opt Options) ([]byte, error) {
	m, err := build(c, opt)
	if err != nil {
		return nil, err
	}
	return proto.Marshal(m)
}

// graph builds an ONNX graph from a checkpoint's tensors.
type graph struct {
	c      *train.Checkpoint
	prefix string // "backbone." in a run's checkpoint, "" in an export
	bn     BatchNorm
	used   map[string]bool
	g      *onnxpb.GraphProto
	err    error
}

func build(c *train.Checkpoint, opt Options) (*onnxpb.ModelProto, error) {
	if opt.BatchNorm == "" {
		opt.BatchNorm = FoldBN
	}
	if opt.BatchNorm != FoldBN && opt.BatchNorm != BatchNormNodes {
		return nil, fmt.Errorf("onnx: BatchNorm %q; choose %s or %s", opt.BatchNorm, FoldBN, BatchNormNodes)
	}
	if c.Model.Arch == "" {
		return nil, fmt.Errorf("onnx: %s records no model settings: it was not written by bt pretrain or bt export", c.Path)
	}
	layout, err := models.Describe(models.Config{Arch: c.Model.Arch, Stem: c.Model.Stem, InChannels: c.Model.InChannels})
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", c.Path, err)
	}
	view, err := c.Data.EvalView()
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", c.Path, err)
	}
	if view.Channels() != layout.InChannels {
		return nil, fmt.Errorf("onnx: %s: the preprocessing gives %d channels, the network takes %d", c.Path, view.Channels(), layout.InChannels)
	}
	g := &graph{c: c, bn: opt.BatchNorm, used: map[string]bool{}, g: &onnxpb.GraphProto{Name: "bt-" + layout.Arch}}
	if c.Tensor("backbone."+layout.StemUnit.Conv+".weight") != nil {
		g.prefix = "backbone."
	}

	x := g.unit(layout.StemUnit, InputName)
	if layout.MaxPool {
		x = g.node("MaxPool", []string{x}, "stem.maxpool", ints("kernel_shape", 3, 3), ints("strides", 2, 2), ints("pads", 1, 1, 1, 1))
	}
	for _, b := range layout.Blocks {
		in := x
		for _, u := range b.Path {
			x = g.unit(u, x)
		}
		short := in
		if b.Shortcut != nil {
			short = g.unit(*b.Shortcut, in)
		}
		name := strings.TrimSuffix(b.Path[0].Conv, ".conv1")
		x = g.node("Add", []string{x, short}, name+".add")
		x = g.node("Relu", []string{x}, name+".relu")
	}
	x = g.node("GlobalAveragePool", []string{x}, "avgpool")
	g.node("Flatten", []string{x}, OutputName, intAttr("axis", 1))
	outputs := []*onnxpb.ValueInfoProto{valueInfo(OutputName, "batch", layout.Dim)}
	if opt.Projector {
		width, err := g.projector(layout.Dim, OutputName)
		if err != nil {
			return nil, err
		}
		outputs = append(outputs, valueInfo(ProjectorName, "batch", width))
	}
	if g.err != nil {
		return nil, g.err
	}
	if err := g.unused(); err != nil {
		return nil, err
	}
	g.g.Input = []*onnxpb.ValueInfoProto{valueInfo(InputName, "batch", layout.InChannels, view.Size, view.Size)}
	g.g.Output = outputs

	mean, _ := json.Marshal(view.Mean)
	std, _ := json.Marshal(view.Std)
	vj, err := json.Marshal(view)
	if err != nil {
		return nil, err
	}
	mj, err := json.Marshal(c.Model)
	if err != nil {
		return nil, err
	}
	meta := map[string]string{
		MetaSize: fmt.Sprint(view.Size), MetaChannels: fmt.Sprint(layout.InChannels),
		MetaMean: string(mean), MetaStd: string(std), MetaView: string(vj),
		MetaArch: layout.Arch, MetaStem: string(layout.Stem), MetaBatchNorm: string(opt.BatchNorm), MetaModel: string(mj),
	}
	var props []*onnxpb.StringStringEntryProto
	for _, k := range slices.Sorted(maps.Keys(meta)) {
		props = append(props, &onnxpb.StringStringEntryProto{Key: k, Value: meta[k]})
	}
	return &onnxpb.ModelProto{
		IrVersion:     irVersion,
		OpsetImport:   []*onnxpb.OperatorSetIdProto{{Domain: "", Version: Opset}},
		ProducerName:  "bt",
		DocString:     fmt.Sprintf("Barlow Twins %s backbone in evaluation mode: %s [batch, %d, %d, %d], pixels in [0, 1] normalised by mean and std per channel, to %s [batch, %d]", layout.Arch, InputName, layout.InChannels, view.Size, view.Size, OutputName, layout.Dim),
		Graph:         g.g,
		MetadataProps: props,
	}, nil
}

// tensor returns the checkpoint's tensor name, of n values, and marks it
// used.
func (g *graph) tensor(name string, n int) []float32 {
	if g.err != nil {
		return nil
	}
	v := g.c.Tensor(name)
	switch {
	case v == nil:
		g.err = fmt.Errorf("onnx: %s has no float32 tensor %q, which the %s network needs", g.c.Path, name, g.c.Model.Arch)
	case len(v) != n:
		g.err = fmt.Errorf("onnx: %s: tensor %q holds %d values, the %s network needs %d", g.c.Path, name, len(v), g.c.Model.Arch, n)
	}
	g.used[name] = true
	return v
}

// unused refuses a checkpoint whose backbone (or exported file) holds
// tensors the graph did not take: they would be silently dropped.
func (g *graph) unused() error {
	for _, name := range g.c.Names() {
		if g.used[name] || (g.prefix != "" && !strings.HasPrefix(name, g.prefix)) {
			continue
		}
		return fmt.Errorf("onnx: %s holds %q, which the %s network has no place for", g.c.Path, name, g.c.Model.Arch)
	}
	return nil
}

// batchNorm returns the scale γ/√(var+ε) and shift β − mean·scale of the
// checkpoint's BatchNorm name over c channels, in float64, and its four
// tensors.
func (g *graph) batchNorm(name string, c int) (scale, shift []float64, w, b, mean, variance []float32) {
	w, b = g.tensor(name+".weight", c), g.tensor(name+".bias", c)
	mean, variance = g.tensor(name+".running_mean", c), g.tensor(name+".running_var", c)
	if g.err != nil {
		return nil, nil, nil, nil, nil, nil
	}
	scale, shift = make([]float64, c), make([]float64, c)
	for i := range c {
		scale[i] = float64(w[i]) / math.Sqrt(float64(variance[i])+bnEps)
		shift[i] = float64(b[i]) - float64(mean[i])*scale[i]
	}
	return scale, shift, w, b, mean, variance
}

// unit adds a convolution, its BatchNorm and its ReLU if any, reading x;
// it returns the unit's output.
func (g *graph) unit(u models.Unit, x string) string {
	k := u.K
	w := g.tensor(g.prefix+u.Conv+".weight", u.Cout*u.Cin*k*k)
	scale, shift, gamma, beta, mean, variance := g.batchNorm(g.prefix+u.BN, u.Cout)
	if g.err != nil {
		return ""
	}
	attrs := []*onnxpb.AttributeProto{ints("kernel_shape", k, k), ints("strides", u.Stride, u.Stride), ints("pads", k/2, k/2, k/2, k/2)}
	wShape := []int{u.Cout, u.Cin, k, k}
	var y string
	if g.bn == FoldBN {
		folded := make([]float32, len(w))
		per := u.Cin * k * k
		for o := range u.Cout {
			for i := range per {
				folded[o*per+i] = float32(float64(w[o*per+i]) * scale[o])
			}
		}
		g.init(u.Conv+".weight", folded, wShape...)
		g.init(u.Conv+".bias", to32(shift), u.Cout)
		y = g.node("Conv", []string{x, u.Conv + ".weight", u.Conv + ".bias"}, u.Conv, attrs...)
	} else {
		g.init(u.Conv+".weight", w, wShape...)
		c := g.node("Conv", []string{x, u.Conv + ".weight"}, u.Conv, attrs...)
		y = g.batchNormNode(u.BN, c, gamma, beta, mean, variance)
	}
	if u.ReLU {
		y = g.node("Relu", []string{y}, u.BN+".relu")
	}
	return y
}

// batchNormNode adds a BatchNormalization node in inference mode.
func (g *graph) batchNormNode(name, x string, gamma, beta, mean, variance []float32) string {
	c := len(gamma)
	g.init(name+".weight", gamma, c)
	g.init(name+".bias", beta, c)
	g.init(name+".running_mean", mean, c)
	g.init(name+".running_var", variance, c)
	return g.node("BatchNormalization", []string{x, name + ".weight", name + ".bias", name + ".running_mean", name + ".running_var"}, name,
		&onnxpb.AttributeProto{Name: "epsilon", Type: onnxpb.AttributeProto_FLOAT, F: bnEps})
}

// projector adds the projector after x, named as the official code's
// nn.Sequential (projector.0, .1, .3, …): Linear (no bias), BatchNorm1d and
// ReLU per hidden layer, then a last Linear. It returns its output width.
func (g *graph) projector(in int, x string) (int, error) {
	if g.prefix == "" || g.c.Tensor("projector.0.weight") == nil {
		return 0, fmt.Errorf("onnx: %s holds no projector (an exported backbone has none); export a checkpoint of bt pretrain, or leave the projector out", g.c.Path)
	}
	widths, err := g.c.Model.Projector.Widths()
	if err != nil {
		return 0, fmt.Errorf("onnx: %s: %w", g.c.Path, err)
	}
	prev := in
	for i, w := range widths {
		name := fmt.Sprintf("projector.%d", 3*i)
		wt := g.tensor(name+".weight", w*prev)
		last := i == len(widths)-1
		out := name
		if last {
			out = ProjectorName
		}
		transB := intAttr("transB", 1)
		switch {
		case last || g.c.Model.NoBN:
			g.init(name+".weight", wt, w, prev)
			x = g.node("Gemm", []string{x, name + ".weight"}, out, transB)
		case g.bn == FoldBN:
			bn := fmt.Sprintf("projector.%d", 3*i+1)
			scale, shift, _, _, _, _ := g.batchNorm(bn, w)
			if g.err != nil {
				return 0, g.err
			}
			folded := make([]float32, len(wt))
			for o := range w {
				for j := range prev {
					folded[o*prev+j] = float32(float64(wt[o*prev+j]) * scale[o])
				}
			}
			g.init(name+".weight", folded, w, prev)
			g.init(name+".bias", to32(shift), w)
			x = g.node("Gemm", []string{x, name + ".weight", name + ".bias"}, out, transB)
		default:
			bn := fmt.Sprintf("projector.%d", 3*i+1)
			_, _, gamma, beta, mean, variance := g.batchNorm(bn, w)
			if g.err != nil {
				return 0, g.err
			}
			g.init(name+".weight", wt, w, prev)
			x = g.node("Gemm", []string{x, name + ".weight"}, out, transB)
			x = g.batchNormNode(bn, x, gamma, beta, mean, variance)
		}
		if !last {
			x = g.node("Relu", []string{x}, fmt.Sprintf("projector.%d", 3*i+2))
		}
		prev = w
	}
	return prev, g.err
}

// node adds an operator reading inputs and writing one output named out.
func (g *graph) node(op string, inputs []string, out string, attrs ...*onnxpb.AttributeProto) string {
	g.g.Node = append(g.g.Node, &onnxpb.NodeProto{OpType: op, Name: out, Input: inputs, Output: []string{out}, Attribute: attrs})
	return out
}

// init adds a float32 initializer.
func (g *graph) init(name string, v []float32, shape ...int) {
	raw := make([]byte, 4*len(v))
	for i, x := range v {
		binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(x))
	}
	dims := make([]int64, len(shape))
	for i, s := range shape {
		dims[i] = int64(s)
	}
	g.g.Initializer = append(g.g.Initializer, &onnxpb.TensorProto{Name: name, DataType: int32(onnxpb.TensorProto_FLOAT), Dims: dims, RawData: raw})
}

func intAttr(name string, v int) *onnxpb.AttributeProto {
	return &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INT, I: int64(v)}
}

func ints(name string, v ...int) *onnxpb.AttributeProto {
	a := &onnxpb.AttributeProto{Name: name, Type: onnxpb.AttributeProto_INTS}
	for _, x := range v {
		a.Ints = append(a.Ints, int64(x))
	}
	return a
}

// valueInfo is a float32 tensor whose first dimension is the symbol batch.
func valueInfo(name, batch string, dims ...int) *onnxpb.ValueInfoProto {
	shape := &onnxpb.TensorShapeProto{Dim: []*onnxpb.TensorShapeProto_Dimension{{Value: &onnxpb.TensorShapeProto_Dimension_DimParam{DimParam: batch}}}}
	for _, d := range dims {
		shape.Dim = append(shape.Dim, &onnxpb.TensorShapeProto_Dimension{Value: &onnxpb.TensorShapeProto_Dimension_DimValue{DimValue: int64(d)}})
	}
	return &onnxpb.ValueInfoProto{Name: name, Type: &onnxpb.TypeProto{Value: &onnxpb.TypeProto_TensorType{TensorType: &onnxpb.TypeProto_Tensor{ElemType: int32(onnxpb.TensorProto_FLOAT), Shape: shape}}}}
}

func to32(v []float64) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x)
	}
	return out
}
