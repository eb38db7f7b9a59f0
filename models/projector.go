package models

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
)

// Projector maps representations [N, In] to embeddings [N, Out]: hidden
// blocks of Linear (no bias), BatchNorm1d and ReLU, then a last Linear (no
// bias) without BatchNorm, as the official code builds it. Its parameters
// are named as that code's nn.Sequential: projector.0 (Linear),
// projector.1 (BatchNorm), projector.3, … .
type Projector struct {
	In, Out int
	linears []*layers.Linear
	bns     []*layers.BatchNorm // one per hidden block; nil entries with NoBN
}

// ParseSpec reads a projector spec such as "8192-8192-8192": the widths of
// each layer's output, the last being the embedding's.
func ParseSpec(spec string) ([]int, error) {
	var widths []int
	for _, f := range strings.Split(spec, "-") {
		w, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || w < 1 {
			return nil, fmt.Errorf("models: projector spec %q: %q is not a positive width (write e.g. 8192-8192-8192)", spec, f)
		}
		widths = append(widths, w)
	}
	return widths, nil
}

// checkWidths refuses an empty list of widths or one that is not positive.
func checkWidths(widths []int) error {
	if len(widths) == 0 || slices.Min(widths) < 1 {
		return fmt.Errorf("models: projector widths %v: want one or more positive widths", widths)
	}
	return nil
}

// NewProjector builds a projector from in through widths (ParseSpec's),
// the last being the embedding's; noBN drops the hidden BatchNorms (one
// of the paper's ablations).
func NewProjector(d *gpu.Device, rng *rand.Rand, in int, widths []int, noBN bool) (*Projector, error) {
	return NewMLP(d, rng, "projector", in, widths, noBN)
}

// NewMLP builds the projector's kind of network under another state-dict
// name, such as the predictor of the paper's asymmetry ablation.
func NewMLP(d *gpu.Device, rng *rand.Rand, name string, in int, widths []int, noBN bool) (*Projector, error) {
	if err := checkWidths(widths); err != nil {
		return nil, err
	}
	p := &Projector{In: in, Out: widths[len(widths)-1]}
	prev := in
	for i, w := range widths {
		l, err := layers.NewLinear(d, rng, fmt.Sprintf("%s.%d", name, 3*i), prev, w, false)
		if err != nil {
			p.Release()
			return nil, err
		}
		p.linears = append(p.linears, l)
		if i < len(widths)-1 {
			var bn *layers.BatchNorm
			if !noBN {
				if bn, err = layers.NewBatchNorm(d, fmt.Sprintf("%s.%d", name, 3*i+1), w, true); err != nil {
					p.Release()
					return nil, err
				}
				bn.ReLU = true // the hidden block's ReLU
			}
			p.bns = append(p.bns, bn)
		}
		prev = w
	}
	return p, nil
}

// ProjectorFootprint sizes a projector from in through widths for n
// representations with activations stored as t: Forward keeps each hidden
// layer's Linear output and its BatchNorm-then-ReLU output, with the
// statistics (f32).
func ProjectorFootprint(in int, widths []int, noBN bool, n int, t gpu.DType) (Footprint, error) {
	if err := checkWidths(widths); err != nil {
		return Footprint{}, err
	}
	f := Footprint{Dim: widths[len(widths)-1]}
	prev := in
	for i, w := range widths {
		f.Params += int64(prev) * int64(w)
		act := int64(t.Size()) * int64(n) * int64(w)
		f.Largest = max(f.Largest, 4*int64(prev)*int64(w), act)
		if i < len(widths)-1 {
			f.Kept += act
			if !noBN {
				f.Params += 2 * int64(w)
				f.Kept += act + 4*3*int64(w)
			}
		}
		prev = w
	}
	return f, nil
}

// projActs is what the projector's forward keeps: each Linear's input,
// each BatchNorm's input and statistics.
type projActs struct {
	n      int
	ins    []*gpu.Tensor // ins[i] is linear i's input; ins[0] belongs to the caller
	pre    []*gpu.Tensor // linear outputs of the hidden blocks (BatchNorm inputs)
	caches []*gpu.Tensor
}

// Forward writes the embeddings of representations x into z.
// z [n, Out], x [n, In].
func (pr *Projector) Forward(r *gpu.Recorder, p *Pass, z, x *gpu.Tensor, n int) error {
	a := &projActs{n: n, ins: []*gpu.Tensor{x}}
	p.proj = a
	cur := x
	for i, l := range pr.linears {
		if i == len(pr.linears)-1 {
			if err := l.Forward(r, z, cur, n); err != nil {
				return err
			}
			break
		}
		h, err := p.act(n, l.Out)
		if err != nil {
			return err
		}
		if err := l.Forward(r, h, cur, n); err != nil {
			return err
		}
		if i > 0 {
			p.drop(cur)
		}
		next := h
		if bn := pr.bns[i]; bn != nil {
			if next, err = p.act(n, l.Out); err != nil {
				return err
			}
			var cache *gpu.Tensor
			if p.train {
				if cache, err = p.keep(gpu.F32, 3, l.Out); err != nil {
					return err
				}
			}
			if err := bn.Forward(r, next, cache, h, n, 1, p.train); err != nil {
				return err
			}
			a.caches = append(a.caches, cache)
			p.drop(h)
		} else {
			a.caches = append(a.caches, nil)
			if err := gpu.ReLU(r, next, next); err != nil {
				return err
			}
		}
		a.pre = append(a.pre, h)
		a.ins = append(a.ins, next)
		cur = next
	}
	if len(pr.linears) > 1 {
		p.drop(cur)
	}
	return nil
}

// Backward writes dX, the gradient of the representations (unless nil),
// and accumulates the parameter gradients, given dZ.
// dX [n, In], dZ [n, Out].
func (pr *Projector) Backward(r *gpu.Recorder, p *Pass, dX, dZ *gpu.Tensor) error {
	a := p.proj
	if a == nil || !p.train {
		return fmt.Errorf("models: Projector.Backward needs the training Pass its Forward filled")
	}
	n := a.n
	g := dZ
	for i := len(pr.linears) - 1; i >= 0; i-- {
		l := pr.linears[i]
		var dIn *gpu.Tensor
		if i == 0 {
			dIn = dX
		} else {
			t, err := p.temp(n, l.In)
			if err != nil {
				return err
			}
			defer t.Release()
			dIn = t
		}
		if err := l.Backward(r, dIn, g, a.ins[i], n); err != nil {
			return err
		}
		if i == 0 {
			break
		}
		// Back through hidden block i−1: its BatchNorm takes the gradient
		// back through the ReLU it fuses; without BatchNorm, the ReLU alone.
		dh, err := p.temp(n, l.In)
		if err != nil {
			return err
		}
		defer dh.Release()
		if bn := pr.bns[i-1]; bn != nil {
			if err := bn.Backward(r, dh, dIn, a.pre[i-1], a.caches[i-1], n, 1); err != nil {
				return err
			}
		} else if err := gpu.ReLUBackward(r, dh, dIn, a.ins[i]); err != nil {
			return err
		}
		g = dh
	}
	return nil
}

// Params lists the trainable parameters.
func (pr *Projector) Params() []*layers.Param {
	var ps []*layers.Param
	for i, l := range pr.linears {
		ps = append(ps, l.Params()...)
		if i < len(pr.bns) && pr.bns[i] != nil {
			ps = append(ps, pr.bns[i].Params()...)
		}
	}
	return ps
}

// BatchNorms lists the hidden BatchNorms.
func (pr *Projector) BatchNorms() []*layers.BatchNorm {
	var bs []*layers.BatchNorm
	for _, b := range pr.bns {
		if b != nil {
			bs = append(bs, b)
		}
	}
	return bs
}

// Release frees the parameters.
func (pr *Projector) Release() {
	for _, l := range pr.linears {
		l.Release()
	}
	for _, b := range pr.bns {
		if b != nil {
			b.Release()
		}
	}
}
