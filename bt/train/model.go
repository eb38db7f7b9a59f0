package train

import (
	"fmt"
	"math/rand/v2"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
	"github.com/bt-org/bt/models"
)

// ModelConfig chooses the network: a backbone and a projector.
type ModelConfig struct {
	Arch       string      `json:"arch"` // tiny, resnet18, resnet34, resnet50
	Stem       models.Stem `json:"stem"` // empty: the architecture's default
	InChannels int         `json:"in_channels"`
	Projector  Projector   `json:"projector"` // widths, e.g. 8192-8192-8192
	NoBN       bool        `json:"projector_no_bn,omitempty"`
	// Predictor adds a two-layer MLP (BatchNorm and ReLU between, as wide
	// as the embedding) on the first branch: the paper's asymmetry ablation.
	Predictor bool   `json:"predictor,omitempty"`
	Seed      uint64 `json:"seed"` // initialisation
}

// Model is the network Barlow Twins trains: the backbone, whose output is
// the representation used downstream, and the projector, whose output is
// the embedding the loss sees. Its state-dict names follow the official
// code: backbone.* (torchvision's ResNet names) and projector.*.
type Model struct {
	Config    ModelConfig
	Backbone  *models.ResNet
	Projector *models.Projector
	Predictor *models.Projector // nil unless Config.Predictor
}

// NewModel builds and initialises a model.
func NewModel(d *gpu.Device, cfg ModelConfig) (*Model, error) {
	widths, err := cfg.Projector.Widths()
	if err != nil {
		return nil, err
	}
	return newModel(d, cfg, widths)
}

// newModel is NewModel with the projector's widths parsed.
func newModel(d *gpu.Device, cfg ModelConfig, widths []int) (*Model, error) {
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xb7))
	b, err := models.NewResNet(d, rng, models.Config{Arch: cfg.Arch, Stem: cfg.Stem, InChannels: cfg.InChannels})
	if err != nil {
		return nil, err
	}
	p, err := models.NewProjector(d, rng, b.Dim, widths, cfg.NoBN)
	if err != nil {
		b.Release()
		return nil, err
	}
	m := &Model{Config: cfg, Backbone: b, Projector: p}
	if cfg.Predictor {
		if m.Predictor, err = models.NewMLP(d, rng, "predictor", p.Out, []int{p.Out, p.Out}, false); err != nil {
			m.Release()
			return nil, err
		}
	}
	return m, nil
}

// Params lists every trainable parameter, named as in a state dict.
func (m *Model) Params() []*layers.Param {
	ps := append(m.Backbone.Params(), m.Projector.Params()...)
	if m.Predictor != nil {
		ps = append(ps, m.Predictor.Params()...)
	}
	return ps
}

// BatchNorms lists every BatchNorm, for their running statistics.
func (m *Model) BatchNorms() []*layers.BatchNorm {
	bs := append(m.Backbone.BatchNorms(), m.Projector.BatchNorms()...)
	if m.Predictor != nil {
		bs = append(bs, m.Predictor.BatchNorms()...)
	}
	return bs
}

// SyncBatchNorm makes every BatchNorm of the model take its statistics
// over the ranks of c (layers.BatchNorm.Sync); nil undoes it.
func (m *Model) SyncBatchNorm(c dist.Comm) {
	for _, b := range m.BatchNorms() {
		b.Sync = c
	}
}

// StateName is the state-dict name of a parameter or BatchNorm of m.
func (m *Model) stateName(backbone bool, name string) string {
	if backbone {
		return "backbone." + name
	}
	return name // the projector's and predictor's names carry their prefix
}

// State lists every tensor of the model's state dict with its name:
// parameters, then BatchNorm running statistics.
func (m *Model) State() []NamedTensor {
	var out []NamedTensor
	add := func(backbone bool, ps []*layers.Param, bns []*layers.BatchNorm) {
		for _, p := range ps {
			out = append(out, NamedTensor{m.stateName(backbone, p.Name), p.Value})
		}
		for _, b := range bns {
			out = append(out, NamedTensor{m.stateName(backbone, b.Name()+".running_mean"), b.RunningMean},
				NamedTensor{m.stateName(backbone, b.Name()+".running_var"), b.RunningVar})
		}
	}
	add(true, m.Backbone.Params(), m.Backbone.BatchNorms())
	add(false, m.Projector.Params(), m.Projector.BatchNorms())
	if m.Predictor != nil {
		add(false, m.Predictor.Params(), m.Predictor.BatchNorms())
	}
	return out
}

// NamedTensor is a device tensor with its state-dict name.
type NamedTensor struct {
	Name   string
	Tensor *gpu.Tensor
}

// Release frees the model.
func (m *Model) Release() {
	m.Backbone.Release()
	m.Projector.Release()
	if m.Predictor != nil {
		m.Predictor.Release()
	}
}

// Describe is a one-line summary of the model.
func (m *Model) Describe() string {
	n := 0
	for _, p := range m.Params() {
		n += p.Value.Len()
	}
	return fmt.Sprintf("%s (%s stem, %d-channel input) → %d-dim representation → projector %s; %.2fM parameters",
		m.Config.Arch, m.Backbone.Stem, m.Config.InChannels, m.Backbone.Dim, m.Config.Projector, float64(n)/1e6)
}
