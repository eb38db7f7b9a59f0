package models

import (
	"fmt"
	"math/rand/v2"
	"strings"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
)

// Stem is a ResNet's first layers.
type Stem string

// The two stems: torchvision's ImageNet stem (7×7 stride-2 convolution and a
// 3×3 stride-2 max-pool) and the small-image stem (3×3 stride 1, no pool)
// used for CIFAR-sized inputs.
const (
	ImageNetStem Stem = "imagenet"
	SmallStem    Stem = "small"
)

// Config chooses a backbone.
type Config struct {
	// Arch is resnet18, resnet34, resnet50 or tiny: the small-image stem
	// with 16 channels and one basic block per stage at widths 16, 32, 64.
	Arch string
	// Stem defaults to ImageNetStem for the ResNets and SmallStem for tiny.
	Stem Stem
	// InChannels is 3 for colour images, 1 for grayscale.
	InChannels int
}

// Archs lists the backbones NewResNet builds.
var Archs = []string{"tiny", "resnet18", "resnet34", "resnet50"}

// ResNet is a torchvision ResNet without its final fully connected layer:
// it maps images [N, InChannels, H, W] to representations [N, Dim].
type ResNet struct {
	Config
	Dim    int
	stem   convBN
	pool   *layers.MaxPool2D // nil for the small stem
	blocks []*block
	gap    *layers.GlobalAvgPool
}

// unitPlan is one convolution and its BatchNorm.
type unitPlan struct{ cin, cout, k, stride int }

// out is the unit's output size for an h×w input.
func (u unitPlan) out(h, w int) (int, int) {
	p := u.k / 2
	return (h+2*p-u.k)/u.stride + 1, (w+2*p-u.k)/u.stride + 1
}

// blockPlan is a residual block: its path and its projection shortcut (nil
// for the identity).
type blockPlan struct {
	name     string
	path     []unitPlan
	shortcut *unitPlan
}

// plan is a backbone's architecture, from which NewResNet builds it and
// ActivationBytes sizes it.
type plan struct {
	cfg    Config
	stem   unitPlan
	pool   bool
	blocks []blockPlan
	dim    int
}

// newBlockPlan is torchvision's basic block (3×3, 3×3) or bottleneck
// (1×1, 3×3, 1×1 with 4× expansion), with the stride on the 3×3
// convolution and a projection shortcut where the shape changes.
func newBlockPlan(name string, cin, width, stride int, bottleneck bool) blockPlan {
	b := blockPlan{name: name}
	cout := width
	if bottleneck {
		cout = 4 * width
		b.path = []unitPlan{{cin, width, 1, 1}, {width, width, 3, stride}, {width, cout, 1, 1}}
	} else {
		b.path = []unitPlan{{cin, width, 3, stride}, {width, width, 3, 1}}
	}
	if stride != 1 || cin != cout {
		b.shortcut = &unitPlan{cin, cout, 1, stride}
	}
	return b
}

func makePlan(cfg Config) (plan, error) {
	var depths []int
	widths := []int{64, 128, 256, 512}
	stemWidth := 64
	bottleneck := false
	switch cfg.Arch {
	case "tiny":
		depths, widths, stemWidth = []int{1, 1, 1}, []int{16, 32, 64}, 16
		if cfg.Stem == "" {
			cfg.Stem = SmallStem
		}
	case "resnet18":
		depths = []int{2, 2, 2, 2}
	case "resnet34":
		depths = []int{3, 4, 6, 3}
	case "resnet50":
		depths, bottleneck = []int{3, 4, 6, 3}, true
	default:
		return plan{}, fmt.Errorf("models: unknown architecture %q; choose one of %s", cfg.Arch, strings.Join(Archs, ", "))
	}
	if cfg.Stem == "" {
		cfg.Stem = ImageNetStem
	}
	if cfg.Stem != ImageNetStem && cfg.Stem != SmallStem {
		return plan{}, fmt.Errorf("models: unknown stem %q; choose %s or %s", cfg.Stem, ImageNetStem, SmallStem)
	}
	if cfg.InChannels != 1 && cfg.InChannels != 3 {
		return plan{}, fmt.Errorf("models: %d input channels; bt takes 1 (grayscale) or 3 (colour)", cfg.InChannels)
	}
	p := plan{cfg: cfg, stem: unitPlan{cfg.InChannels, stemWidth, 7, 2}, pool: cfg.Stem == ImageNetStem}
	if cfg.Stem == SmallStem {
		p.stem.k, p.stem.stride = 3, 1
	}
	cin := stemWidth
	for s, depth := range depths {
		for i := range depth {
			stride := 1
			if s > 0 && i == 0 {
				stride = 2
			}
			b := newBlockPlan(fmt.Sprintf("layer%d.%d", s+1, i), cin, widths[s], stride, bottleneck)
			p.blocks = append(p.blocks, b)
			cin = b.path[len(b.path)-1].cout
		}
	}
	p.dim = cin
	return p, nil
}

// NewResNet builds a backbone initialised as torchvision does (Kaiming
// normal convolutions, BatchNorm γ = 1 and β = 0, the last γ of each block
// zero) from rng.
func NewResNet(d *gpu.Device, rng *rand.Rand, cfg Config) (*ResNet, error) {
	p, err := makePlan(cfg)
	if err != nil {
		return nil, err
	}
	m := &ResNet{Config: p.cfg, Dim: p.dim, gap: layers.NewGlobalAvgPool(d)}
	if m.stem, err = newConvBN(d, rng, "conv1", "bn1", p.stem, true); err != nil {
		return nil, err
	}
	if p.pool {
		if m.pool, err = layers.NewMaxPool2D(d, 3, 2, 1); err != nil {
			m.Release()
			return nil, err
		}
	}
	for _, bp := range p.blocks {
		b, err := newBlock(d, rng, bp)
		if err != nil {
			m.Release()
			return nil, err
		}
		m.blocks = append(m.blocks, b)
	}
	return m, nil
}

// Footprint is what a network needs on the device for a batch, worked out
// from its architecture before anything is allocated.
type Footprint struct {
	Params  int64 // trainable parameters
	Kept    int64 // bytes a training forward pass keeps for its backward, per view
	Largest int64 // bytes of the largest single activation
	Dim     int   // output width
}

// BackboneFootprint sizes a backbone for n images of h×w pixels with
// activations stored as t (NewPassOf). Kept follows Forward's rules: every
// convolution's output and BatchNorm's statistics (f32), the ReLU outputs
// inside each block, each block's output, the stem's output and pooling
// (its choices f32).
func BackboneFootprint(cfg Config, n, h, w int, t gpu.DType) (Footprint, error) {
	p, err := makePlan(cfg)
	if err != nil {
		return Footprint{}, err
	}
	f := Footprint{Dim: p.dim}
	act := func(c, h, w int) int64 {
		b := int64(t.Size()) * int64(n) * int64(c) * int64(h) * int64(w)
		f.Largest = max(f.Largest, b)
		return b
	}
	unit := func(u unitPlan, h, w int) (int, int) {
		oh, ow := u.out(h, w)
		f.Params += int64(u.cin*u.cout*u.k*u.k + 2*u.cout)
		f.Kept += act(u.cout, oh, ow) + 4*3*int64(u.cout)
		return oh, ow
	}
	h, w = unit(p.stem, h, w)
	f.Kept += act(p.stem.cout, h, w)
	if p.pool {
		h, w = (h+2-3)/2+1, (w+2-3)/2+1
		f.Kept += act(p.stem.cout, h, w) + 4*int64(n)*int64(p.stem.cout)*int64(h)*int64(w) // pooled values and the choices
	}
	for _, b := range p.blocks {
		bh, bw := h, w
		for i, u := range b.path {
			bh, bw = unit(u, bh, bw)
			if i < len(b.path)-1 {
				f.Kept += act(u.cout, bh, bw)
			}
		}
		if b.shortcut != nil {
			unit(*b.shortcut, h, w)
		}
		f.Kept += act(b.path[len(b.path)-1].cout, bh, bw)
		h, w = bh, bw
	}
	return f, nil
}

// resnetActs is what a backbone's forward keeps in its Pass.
type resnetActs struct {
	n, h, w  int
	x        *gpu.Tensor // the input, owned by the caller
	stem     convBNActs
	stemOut  *gpu.Tensor // after ReLU
	argmax   *gpu.Tensor // max-pool choices
	blocks   []blockActs
	sizes    [][2]int // each block's input size
	features *gpu.Tensor
}

// Forward writes the representations of images x into repr.
// repr [n, Dim], x [n, InChannels, h, w].
func (m *ResNet) Forward(r *gpu.Recorder, p *Pass, repr, x *gpu.Tensor, n, h, w int) error {
	a := &resnetActs{n: n, h: h, w: w, x: x, blocks: make([]blockActs, len(m.blocks))}
	p.resnet = a
	sh, sw := m.stem.conv.OutSize(h, w)
	var err error
	if a.stemOut, err = p.act(n, m.stem.conv.Cout, sh, sw); err != nil {
		return err
	}
	if err := m.stem.forward(r, p, &a.stem, a.stemOut, x, n, h, w); err != nil {
		return err
	}
	cur, ch, cw := a.stemOut, sh, sw
	if m.pool != nil {
		ph, pw := m.pool.OutSize(sh, sw)
		pooled, err := p.act(n, m.stem.conv.Cout, ph, pw)
		if err != nil {
			return err
		}
		if a.argmax, err = p.actOf(gpu.F32, n, m.stem.conv.Cout, ph, pw); err != nil {
			return err
		}
		if err := m.pool.Forward(r, pooled, a.argmax, cur, n, m.stem.conv.Cout, sh, sw); err != nil {
			return err
		}
		p.drop(cur)
		p.drop(a.argmax)
		cur, ch, cw = pooled, ph, pw
	}
	for i, b := range m.blocks {
		a.sizes = append(a.sizes, [2]int{ch, cw})
		if err := b.forward(r, p, &a.blocks[i], cur, n, ch, cw); err != nil {
			return err
		}
		p.drop(cur)
		cur = a.blocks[i].out
		ch, cw = b.outSize(ch, cw)
	}
	if err := m.gap.Forward(r, repr, cur, n, m.Dim, ch*cw); err != nil {
		return err
	}
	p.drop(cur)
	return nil
}

// Backward accumulates every parameter's gradient given dRepr, the gradient
// of the representations Forward wrote; the input's gradient is not needed.
// dRepr [n, Dim].
func (m *ResNet) Backward(r *gpu.Recorder, p *Pass, dRepr *gpu.Tensor) error {
	a := p.resnet
	if a == nil || !p.train {
		return fmt.Errorf("models: ResNet.Backward needs the training Pass its Forward filled")
	}
	n := a.n
	last := len(m.blocks) - 1
	oh, ow := m.blocks[last].outSize(a.sizes[last][0], a.sizes[last][1])
	g, err := p.temp(n, m.Dim, oh, ow)
	if err != nil {
		return err
	}
	defer g.Release()
	if err := m.gap.Backward(r, g, dRepr, n, m.Dim, oh*ow); err != nil {
		return err
	}
	for i := last; i >= 0; i-- {
		b := m.blocks[i]
		h, w := a.sizes[i][0], a.sizes[i][1]
		dIn, err := p.temp(n, b.cin(), h, w)
		if err != nil {
			return err
		}
		defer dIn.Release()
		if err := b.backward(r, p, &a.blocks[i], dIn, g, n, h, w); err != nil {
			return err
		}
		g = dIn
	}
	c := m.stem.conv.Cout
	sh, sw := m.stem.conv.OutSize(a.h, a.w)
	if m.pool != nil {
		dPool, err := p.temp(n, c, sh, sw)
		if err != nil {
			return err
		}
		defer dPool.Release()
		if err := m.pool.Backward(r, dPool, g, a.argmax, n, c, sh, sw); err != nil {
			return err
		}
		g = dPool
	}
	return m.stem.backward(r, p, &a.stem, nil, g, a.x, n, a.h, a.w)
}

// Params lists the trainable parameters in torchvision's order.
func (m *ResNet) Params() []*layers.Param {
	ps := m.stem.params()
	for _, b := range m.blocks {
		ps = append(ps, b.params()...)
	}
	return ps
}

// BatchNorms lists every BatchNorm, for their running statistics: none in
// a folded network (Fold).
func (m *ResNet) BatchNorms() []*layers.BatchNorm {
	var bs []*layers.BatchNorm
	if m.stem.bn != nil {
		bs = append(bs, m.stem.bn)
	}
	for _, b := range m.blocks {
		bs = append(bs, b.bns()...)
	}
	return bs
}

// Release frees the parameters.
func (m *ResNet) Release() {
	if m.stem.conv != nil {
		m.stem.release()
	}
	for _, b := range m.blocks {
		b.release()
	}
}
