package models

import (
	"github.com/bt-org/bt/layers"
)

// Fold returns an inference copy of m with every BatchNorm folded into the
// convolution before it (layers.FoldBatchNorm): each unit is then one
// convolution whose store adds the bias and takes the ReLU, where m's
// evaluation forward runs a convolution and a BatchNorm pass over its
// output. Its Forward computes what m's evaluation forward computes, up to
// rounding, from m's parameters and running statistics as they are now; it
// takes evaluation passes only and has no Backward. Release frees the
// copy's parameters and leaves m's alone.
func Fold(m *ResNet) (*ResNet, error) {
	f := &ResNet{Config: m.Config, Dim: m.Dim, pool: m.pool, gap: m.gap}
	var err error
	if f.stem, err = m.stem.fold(); err != nil {
		return nil, err
	}
	for _, b := range m.blocks {
		fb := &block{}
		f.blocks = append(f.blocks, fb)
		for _, u := range b.path {
			fu, err := u.fold()
			if err != nil {
				f.Release()
				return nil, err
			}
			fb.path = append(fb.path, fu)
		}
		if b.shortcut != nil {
			sc, err := b.shortcut.fold()
			if err != nil {
				f.Release()
				return nil, err
			}
			fb.shortcut = &sc
		}
	}
	return f, nil
}

// fold is the unit with its BatchNorm folded into its convolution.
func (u convBN) fold() (convBN, error) {
	c, err := layers.FoldBatchNorm(u.conv, u.bn)
	if err != nil {
		return convBN{}, err
	}
	return convBN{conv: c, relu: u.bn.ReLU}, nil
}
