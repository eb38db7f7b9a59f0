package loss

import (
	"errors"
	"fmt"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
)

// Objective is what the Trainer minimises over a batch of embedding pairs:
// the Barlow Twins Loss, or InfoNCE for the paper's comparison.
type Objective interface {
	// Forward writes the objective of za and zb [N, D] into loss[0].
	Forward(r *gpu.Recorder, loss, za, zb *gpu.Tensor) error
	// Backward writes its gradients with respect to za and zb for the
	// latest Forward.
	Backward(r *gpu.Recorder, dza, dzb *gpu.Tensor) error
	// Size is the batch N and embedding width D the objective is made for.
	Size() (n, dim int)
	Release()
}

// InfoNCE is the cross-entropy with temperature of the paper's loss
// ablation (its Table 4, after SimCLR): embeddings are scaled to unit
// length, S = Ẑ_A Ẑ_Bᵀ/τ holds every cross-view cosine similarity, and
// each image must pick its own other view among the batch's:
// L = ½(mean_i CE(S_i, i) + mean_i CE(Sᵀ_i, i)), symmetric in the views.
// Each image's negatives are the other images' other views, N−1 of them;
// SimCLR also counts the other images' same views, which would add two
// more N×N products for a variant that only needs to be comparable.
type InfoNCE struct {
	Temperature float32

	d      *gpu.Device
	n, dim int
	ready  bool

	ha, hb     *gpu.Tensor // [N, D] unit-length embeddings
	inva, invb *gpu.Tensor // [N] their scales
	s1, s2     *gpu.Tensor // [N, N] Ẑ_A Ẑ_Bᵀ/τ and Ẑ_B Ẑ_Aᵀ/τ
	g1, g2     *gpu.Tensor // [N, N] gradients of the mean cross-entropies
	labels     *gpu.Tensor // [N] 0, 1, …, N−1
	row1, row2 *gpu.Tensor // [N] per-row cross-entropies
	m1, m2     *gpu.Tensor // [1] their means
	sum        *gpu.Tensor // [1]
	dha, dhb   *gpu.Tensor // [N, D]
}

// NewInfoNCE returns the objective for batches of n pairs of dim-wide
// embeddings at the given temperature (SimCLR uses 0.1 to 0.5).
func NewInfoNCE(d *gpu.Device, n, dim int, temperature float32) (*InfoNCE, error) {
	if n < 2 || dim < 1 || !(temperature > 0) {
		return nil, fmt.Errorf("loss: InfoNCE needs a batch of 2 or more, a width of 1 or more and a positive temperature; got %d, %d, %v", n, dim, temperature)
	}
	l := &InfoNCE{Temperature: temperature, d: d, n: n, dim: dim}
	labels := make([]float32, n)
	for i := range labels {
		labels[i] = float32(i)
	}
	for _, t := range []struct {
		p     **gpu.Tensor
		shape []int
	}{{&l.ha, []int{n, dim}}, {&l.hb, []int{n, dim}}, {&l.inva, []int{n}}, {&l.invb, []int{n}},
		{&l.s1, []int{n, n}}, {&l.s2, []int{n, n}}, {&l.g1, []int{n, n}}, {&l.g2, []int{n, n}},
		{&l.labels, []int{n}}, {&l.row1, []int{n}}, {&l.row2, []int{n}}, {&l.m1, []int{1}}, {&l.m2, []int{1}},
		{&l.sum, []int{1}}, {&l.dha, []int{n, dim}}, {&l.dhb, []int{n, dim}}} {
		x, err := d.NewTensor(t.shape...)
		if err != nil {
			l.Release()
			return nil, err
		}
		*t.p = x
	}
	if err := l.labels.Upload(labels); err != nil {
		l.Release()
		return nil, err
	}
	return l, nil
}

// Size is the batch and width the objective is made for.
func (l *InfoNCE) Size() (int, int) { return l.n, l.dim }

// Release frees the workspaces.
func (l *InfoNCE) Release() {
	for _, t := range []*gpu.Tensor{l.ha, l.hb, l.inva, l.invb, l.s1, l.s2, l.g1, l.g2, l.labels, l.row1, l.row2, l.m1, l.m2, l.sum, l.dha, l.dhb} {
		t.Release()
	}
}

var unitLength = layers.RowNorm{Mode: "l2", Eps: 1e-12}

// Forward writes the objective into loss[0].
func (l *InfoNCE) Forward(r *gpu.Recorder, loss, za, zb *gpu.Tensor) error {
	n, dim := l.n, l.dim
	for _, z := range []*gpu.Tensor{za, zb} {
		if z == nil || z.Len() != n*dim {
			return fmt.Errorf("loss: InfoNCE is for [%d, %d] embeddings", n, dim)
		}
	}
	if loss == nil || loss.Len() != 1 {
		return errors.New("loss: InfoNCE writes a one-element loss tensor")
	}
	if err := unitLength.Forward(r, l.ha, l.inva, za, n, dim); err != nil {
		return err
	}
	if err := unitLength.Forward(r, l.hb, l.invb, zb, n, dim); err != nil {
		return err
	}
	t := 1 / l.Temperature
	if err := gpu.Gemm(r, l.s1, l.ha, l.hb, gpu.GemmOp{M: n, N: n, K: dim, TransB: true, Alpha: t}); err != nil {
		return err
	}
	if err := gpu.Gemm(r, l.s2, l.hb, l.ha, gpu.GemmOp{M: n, N: n, K: dim, TransB: true, Alpha: t}); err != nil {
		return err
	}
	for _, s := range []struct{ s, row, m *gpu.Tensor }{{l.s1, l.row1, l.m1}, {l.s2, l.row2, l.m2}} {
		if err := layers.CrossEntropyForward(r, s.row, s.s, l.labels, n, n); err != nil {
			return err
		}
		if err := gpu.Reduce(r, s.m, s.row, 1, 1, n, gpu.Mean); err != nil {
			return err
		}
	}
	if err := gpu.Add(r, l.sum, l.m1, l.m2); err != nil {
		return err
	}
	l.ready = true
	return gpu.Scale(r, loss, l.sum, 0.5)
}

// Backward writes dL/dza and dL/dzb for the latest Forward.
func (l *InfoNCE) Backward(r *gpu.Recorder, dza, dzb *gpu.Tensor) error {
	if !l.ready {
		return errors.New("loss: InfoNCE Backward needs a Forward recorded first")
	}
	n, dim := l.n, l.dim
	if dza == nil || dzb == nil || dza.Len() != n*dim || dzb.Len() != n*dim || dza == dzb {
		return fmt.Errorf("loss: InfoNCE Backward needs two separate [%d, %d] gradients", n, dim)
	}
	if err := layers.CrossEntropyBackward(r, l.g1, l.s1, l.labels, n, n); err != nil {
		return err
	}
	if err := layers.CrossEntropyBackward(r, l.g2, l.s2, l.labels, n, n); err != nil {
		return err
	}
	// S1 = Ẑ_A Ẑ_Bᵀ/τ and S2 = Ẑ_B Ẑ_Aᵀ/τ, each mean weighed ½:
	// dẐ_A = (G1 Ẑ_B + G2ᵀ Ẑ_B)/(2τ), dẐ_B = (G1ᵀ Ẑ_A + G2 Ẑ_A)/(2τ).
	a := 0.5 / l.Temperature
	for _, g := range []struct{ out, first, second, h *gpu.Tensor }{{l.dha, l.g1, l.g2, l.hb}, {l.dhb, l.g2, l.g1, l.ha}} {
		if err := gpu.Gemm(r, g.out, g.first, g.h, gpu.GemmOp{M: n, N: dim, K: n, Alpha: a}); err != nil {
			return err
		}
		if err := gpu.Gemm(r, g.out, g.second, g.h, gpu.GemmOp{M: n, N: dim, K: n, TransA: true, Alpha: a, Beta: 1}); err != nil {
			return err
		}
	}
	if err := unitLength.Backward(r, dza, l.dha, l.ha, l.inva, n, dim); err != nil {
		return err
	}
	return unitLength.Backward(r, dzb, l.dhb, l.hb, l.invb, n, dim)
}
