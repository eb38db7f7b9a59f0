package models

import (
	"fmt"
	"math/rand/v2"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
)

// convBN is a convolution followed by BatchNorm, and by a ReLU where the
// unit has one (fused into the BatchNorm): the unit every ResNet path is
// made of.
type convBN struct {
	conv *layers.Conv2D
	bn   *layers.BatchNorm // nil where Fold has folded it into conv
	relu bool              // a folded unit's ReLU, which its convolution takes
}

// convBNActs is what a convBN's forward keeps: the convolution's output
// (BatchNorm's input) and the batch statistics.
type convBNActs struct {
	c, cache *gpu.Tensor
}

func newConvBN(d *gpu.Device, rng *rand.Rand, conv, bn string, u unitPlan, relu bool) (convBN, error) {
	c, err := layers.NewConv2D(d, rng, conv, u.cin, u.cout, u.k, u.stride, u.k/2, false)
	if err != nil {
		return convBN{}, err
	}
	b, err := layers.NewBatchNorm(d, bn, u.cout, true)
	if err != nil {
		c.Release()
		return convBN{}, err
	}
	b.ReLU = relu
	return convBN{conv: c, bn: b}, nil
}

// forward writes out = BN(conv(in)), ReLU'd if the unit has a ReLU.
// out [n, cout, oh, ow], in [n, cin, h, w].
func (u convBN) forward(r *gpu.Recorder, p *Pass, a *convBNActs, out, in *gpu.Tensor, n, h, w int) error {
	if u.bn == nil {
		if p.train {
			return fmt.Errorf("models: %s: a network with folded BatchNorm runs evaluation passes only", u.conv.Weight.Name)
		}
		if u.relu {
			return u.conv.ForwardReLU(r, out, in, n, h, w)
		}
		return u.conv.Forward(r, out, in, n, h, w)
	}
	oh, ow := u.conv.OutSize(h, w)
	var err error
	if a.c, err = p.act(n, u.conv.Cout, oh, ow); err != nil {
		return err
	}
	if err := u.conv.Forward(r, a.c, in, n, h, w); err != nil {
		return err
	}
	if p.train {
		if a.cache, err = p.keep(gpu.F32, 3, u.conv.Cout); err != nil {
			return err
		}
	}
	if err := u.bn.Forward(r, out, a.cache, a.c, n, oh*ow, p.train); err != nil {
		return err
	}
	p.drop(a.c)
	return nil
}

// backward writes dIn (unless nil) and accumulates the parameter gradients,
// given dOut, the gradient of the unit's output (after its ReLU, if any).
// dIn [n, cin, h, w], dOut [n, cout, oh, ow], in [n, cin, h, w].
func (u convBN) backward(r *gpu.Recorder, p *Pass, a *convBNActs, dIn, dOut, in *gpu.Tensor, n, h, w int) error {
	oh, ow := u.conv.OutSize(h, w)
	dc, err := p.temp(n, u.conv.Cout, oh, ow)
	if err != nil {
		return err
	}
	defer dc.Release()
	if err := u.bn.Backward(r, dc, dOut, a.c, a.cache, n, oh*ow); err != nil {
		return err
	}
	return u.conv.Backward(r, dIn, dc, in, n, h, w)
}

func (u convBN) params() []*layers.Param {
	if u.bn == nil {
		return u.conv.Params()
	}
	return append(u.conv.Params(), u.bn.Params()...)
}

func (u convBN) release() {
	u.conv.Release()
	if u.bn != nil {
		u.bn.Release()
	}
}

// block is a residual block: out = ReLU(path(x) + shortcut(x)), where path
// is two convBNs (basic) or three (bottleneck), ReLU between them, and the
// shortcut is the identity or a 1×1 projection (conv and BN) when the shape
// changes.
type block struct {
	path     []convBN
	shortcut *convBN
}

// blockActs is what a block's forward keeps.
type blockActs struct {
	in   *gpu.Tensor   // the block's input, owned by the caller
	mid  []*gpu.Tensor // ReLU outputs between the path's units
	path []convBNActs
	sc   convBNActs
	out  *gpu.Tensor // ReLU(sum), also the next block's input
}

// newBlock builds a block from its plan. The last BatchNorm's γ starts at
// zero, so the block starts as its shortcut (zero_init_residual, which the
// official backbone uses).
func newBlock(d *gpu.Device, rng *rand.Rand, p blockPlan) (*block, error) {
	b := &block{}
	for i, u := range p.path {
		// Every unit but the last is followed by a ReLU; the last one's
		// comes after the sum with the shortcut.
		cb, err := newConvBN(d, rng, fmt.Sprintf("%s.conv%d", p.name, i+1), fmt.Sprintf("%s.bn%d", p.name, i+1), u, i < len(p.path)-1)
		if err != nil {
			b.release()
			return nil, err
		}
		b.path = append(b.path, cb)
	}
	if err := b.path[len(b.path)-1].bn.ZeroGamma(); err != nil {
		b.release()
		return nil, err
	}
	if p.shortcut != nil {
		sc, err := newConvBN(d, rng, p.name+".downsample.0", p.name+".downsample.1", *p.shortcut, false)
		if err != nil {
			b.release()
			return nil, err
		}
		b.shortcut = &sc
	}
	return b, nil
}

func (b *block) cin() int  { return b.path[0].conv.Cin }
func (b *block) cout() int { return b.path[len(b.path)-1].conv.Cout }

// outSize is the block's output height and width.
func (b *block) outSize(h, w int) (int, int) {
	for _, u := range b.path {
		h, w = u.conv.OutSize(h, w)
	}
	return h, w
}

// forward computes a.out = ReLU(path(in) + shortcut(in)).
// a.out [n, cout, oh, ow], in [n, cin, h, w].
func (b *block) forward(r *gpu.Recorder, p *Pass, a *blockActs, in *gpu.Tensor, n, h, w int) error {
	a.in = in
	a.path = make([]convBNActs, len(b.path))
	a.mid = a.mid[:0]
	x, xh, xw := in, h, w
	for i, u := range b.path {
		oh, ow := u.conv.OutSize(xh, xw)
		last := i == len(b.path)-1
		var y *gpu.Tensor
		var err error
		if last {
			y, err = p.temp(n, u.conv.Cout, oh, ow) // BN's output before the sum; not needed later
		} else {
			y, err = p.act(n, u.conv.Cout, oh, ow)
		}
		if err != nil {
			return err
		}
		if err := u.forward(r, p, &a.path[i], y, x, n, xh, xw); err != nil {
			return err
		}
		if i > 0 {
			p.drop(x)
		}
		if !last && p.train {
			a.mid = append(a.mid, y)
		}
		x, xh, xw = y, oh, ow
	}
	branch := x
	defer branch.Release()
	short := in
	if b.shortcut != nil {
		s, err := p.temp(n, b.cout(), xh, xw)
		if err != nil {
			return err
		}
		defer s.Release()
		if err := b.shortcut.forward(r, p, &a.sc, s, in, n, h, w); err != nil {
			return err
		}
		short = s
	}
	var err error
	if a.out, err = p.act(n, b.cout(), xh, xw); err != nil {
		return err
	}
	return gpu.AddReLU(r, a.out, branch, short)
}

// backward writes dIn, the gradient of the block's input, and accumulates
// the parameter gradients, given dOut, the gradient of a.out.
// dIn [n, cin, h, w], dOut [n, cout, oh, ow].
func (b *block) backward(r *gpu.Recorder, p *Pass, a *blockActs, dIn, dOut *gpu.Tensor, n, h, w int) error {
	oh, ow := b.outSize(h, w)
	dSum, err := p.temp(n, b.cout(), oh, ow)
	if err != nil {
		return err
	}
	defer dSum.Release()
	if err := gpu.ReLUBackward(r, dSum, dOut, a.out); err != nil {
		return err
	}
	// The shortcut first: its gradient of the input goes into dIn, and the
	// path's is added to it at the end.
	if b.shortcut != nil {
		if err := b.shortcut.backward(r, p, &a.sc, dIn, dSum, a.in, n, h, w); err != nil {
			return err
		}
	} else if err := r.Copy(dIn, dSum); err != nil {
		return err
	}
	// Down the path, last unit first; sizes[i] is unit i's input size.
	sizes := [][2]int{{h, w}}
	for _, u := range b.path {
		hh, ww := u.conv.OutSize(sizes[len(sizes)-1][0], sizes[len(sizes)-1][1])
		sizes = append(sizes, [2]int{hh, ww})
	}
	g := dSum
	for i := len(b.path) - 1; i >= 0; i-- {
		u := b.path[i]
		in := a.in
		if i > 0 {
			in = a.mid[i-1]
		}
		sh, sw := sizes[i][0], sizes[i][1]
		dx, err := p.temp(n, u.conv.Cin, sh, sw)
		if err != nil {
			return err
		}
		defer dx.Release()
		// dx is the gradient of unit i−1's output, after its ReLU, which
		// that unit's BatchNorm takes back through.
		if err := u.backward(r, p, &a.path[i], dx, g, in, n, sh, sw); err != nil {
			return err
		}
		g = dx
	}
	return gpu.Axpy(r, dIn, g, 1)
}

func (b *block) params() []*layers.Param {
	var ps []*layers.Param
	for _, u := range b.path {
		ps = append(ps, u.params()...)
	}
	if b.shortcut != nil {
		ps = append(ps, b.shortcut.params()...)
	}
	return ps
}

func (b *block) bns() []*layers.BatchNorm {
	var bs []*layers.BatchNorm
	for _, u := range b.path {
		if u.bn != nil {
			bs = append(bs, u.bn)
		}
	}
	if b.shortcut != nil && b.shortcut.bn != nil {
		bs = append(bs, b.shortcut.bn)
	}
	return bs
}

func (b *block) release() {
	for _, u := range b.path {
		u.release()
	}
	if b.shortcut != nil {
		b.shortcut.release()
	}
}
