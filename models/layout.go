package models

import "fmt"

// Unit is one convolution (no bias, padding K/2) and its BatchNorm, under
// their state-dict names; ReLU says whether a ReLU follows the BatchNorm
// within the unit.
type Unit struct {
	Conv, BN             string
	Cin, Cout, K, Stride int
	ReLU                 bool
}

// Block is a residual block: ReLU(path(x) + shortcut(x)), the shortcut
// being the identity when Shortcut is nil.
type Block struct {
	Path     []Unit
	Shortcut *Unit
}

// Layout is a backbone's architecture as NewResNet builds it, for programs
// that rebuild the network elsewhere (bt export -format onnx): StemUnit, a
// 3×3 stride-2 max-pool with padding 1 after it where MaxPool is set, the
// blocks, then global average pooling to Dim values.
type Layout struct {
	Config
	StemUnit Unit
	MaxPool  bool
	Blocks   []Block
	Dim      int
}

// Describe returns the layout of the backbone cfg chooses.
func Describe(cfg Config) (Layout, error) {
	p, err := makePlan(cfg)
	if err != nil {
		return Layout{}, err
	}
	unit := func(conv, bn string, u unitPlan, relu bool) Unit {
		return Unit{Conv: conv, BN: bn, Cin: u.cin, Cout: u.cout, K: u.k, Stride: u.stride, ReLU: relu}
	}
	l := Layout{Config: p.cfg, StemUnit: unit("conv1", "bn1", p.stem, true), MaxPool: p.pool, Dim: p.dim}
	for _, bp := range p.blocks {
		var b Block
		for i, u := range bp.path {
			b.Path = append(b.Path, unit(fmt.Sprintf("%s.conv%d", bp.name, i+1), fmt.Sprintf("%s.bn%d", bp.name, i+1), u, i < len(bp.path)-1))
		}
		if bp.shortcut != nil {
			sc := unit(bp.name+".downsample.0", bp.name+".downsample.1", *bp.shortcut, false)
			b.Shortcut = &sc
		}
		l.Blocks = append(l.Blocks, b)
	}
	return l, nil
}
