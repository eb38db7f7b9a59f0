package bench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/gpu"
)

// LossShape is one benchmarked Barlow Twins loss: N embedding pairs of
// width D.
type LossShape struct {
	Name string
	N, D int
}

// LossShapes are the loss benchmark's shapes: solo-learn's CIFAR projector
// at batch 256, the paper's ImageNet setting, and the widest projector of
// the paper's ablation at a single-GPU batch.
var LossShapes = []LossShape{
	{"256x2048", 256, 2048},
	{"2048x8192", 2048, 8192},
	{"512x16384", 512, 16384},
}

// Flops is the useful work of one forward and backward pass: the three
// N×D×D GEMMs of the materialised path (C, and the two gradients through
// it), whatever a path actually computes.
func (s LossShape) Flops() float64 { return 6 * float64(s.N) * float64(s.D) * float64(s.D) }

// LossPath is one measured way of computing the loss and its gradients.
type LossPath struct {
	Measured bool
	Seconds  float64 // one forward and backward pass, submitted and waited for
	GFLOPS   float64 // LossShape.Flops per second
	// Bytes is what the pool grew by to run the step from empty:
	// workspaces, embeddings, gradients and parameter blocks. The pool keeps
	// every buffer it makes, so this is the step's peak.
	Bytes uint64
	Note  string // why it was not measured, or how it was run
}

func (p LossPath) String() string {
	if !p.Measured {
		return p.Note
	}
	s := fmt.Sprintf("%8.3f s %8.1f GFLOP/s %7.0f MiB", p.Seconds, p.GFLOPS, float64(p.Bytes)/(1<<20))
	if p.Note != "" {
		s += " (" + p.Note + ")"
	}
	return s
}

// LossResult compares the loss's two paths with the three GEMMs that the
// fused path replaces, measured in the same run.
type LossResult struct {
	Shape                      LossShape
	Fused, Materialised, GEMMs LossPath
}

func (r LossResult) String() string {
	s := fmt.Sprintf("loss %-12s fused        %v\n", r.Shape.Name, r.Fused)
	s += fmt.Sprintf("loss %-12s materialised %v\n", r.Shape.Name, r.Materialised)
	s += fmt.Sprintf("loss %-12s 3 GEMMs      %v", r.Shape.Name, r.GEMMs)
	if r.GEMMs.Measured {
		s += fmt.Sprintf("\nloss %-12s fused takes %.2f× the time of the 3 GEMMs", r.Shape.Name, r.Fused.Seconds/r.GEMMs.Seconds)
	}
	return s
}

// LossStep holds a loss and its operands on the device.
type LossStep struct {
	Loss             *loss.BarlowTwins
	d                *gpu.Device
	za, zb, dza, dzb *gpu.Tensor // [N, D]
	out              *gpu.Tensor // [1]
	shape            LossShape
}

// randomTensor uploads standard normal values; uninitialised memory could
// hold denormals, which slow a CPU adapter down.
func randomTensor(d *gpu.Device, rng *rand.Rand, shape ...int) (*gpu.Tensor, error) {
	n := 1
	for _, s := range shape {
		n *= s
	}
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(rng.NormFloat64())
	}
	return d.FromSlice(v, shape...)
}

// NewLossStep allocates a loss on the given path and random embeddings.
func NewLossStep(d *gpu.Device, s LossShape, fused bool) (*LossStep, error) {
	o := loss.DefaultOptions()
	o.Path = loss.Materialised
	if fused {
		o.Path = loss.Fused
	}
	l, err := loss.NewBarlowTwins(d, s.N, s.D, o)
	if err != nil {
		return nil, err
	}
	st := &LossStep{Loss: l, d: d, shape: s}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, t := range []**gpu.Tensor{&st.za, &st.zb, &st.dza, &st.dzb} {
		if *t, err = randomTensor(d, rng, s.N, s.D); err != nil {
			st.Release()
			return nil, err
		}
	}
	if st.out, err = d.NewTensor(1); err != nil {
		st.Release()
		return nil, err
	}
	return st, nil
}

// Release frees the loss and its operands.
func (st *LossStep) Release() {
	st.Loss.Release()
	for _, t := range []*gpu.Tensor{st.za, st.zb, st.dza, st.dzb, st.out} {
		t.Release()
	}
}

// Run records one forward and backward pass, submits it and waits.
func (st *LossStep) Run() error {
	err := st.d.Run(func(r *gpu.Recorder) error {
		if err := st.Loss.Forward(r, st.out, st.za, st.zb); err != nil {
			return err
		}
		return st.Loss.Backward(r, st.dza, st.dzb)
	})
	st.d.Sync()
	return err
}

// LossGEMMs are the three GEMMs of the materialised path on random
// operands: C = Ẑ_Aᵀ·Ẑ_B/N, dẐ_A = Ẑ_B·Gᵀ/N, dẐ_B = Ẑ_A·G/N. Where C does
// not fit in one binding they run over Panels panels of D/Panels rows of C
// (a panel of Ẑ_A's columns is a separate tensor), which does the same
// work as GEMMs of the full size.
type LossGEMMs struct {
	Panels        int
	d             *gpu.Device
	shape         LossShape
	ha, hb, ap, c *gpu.Tensor
	dap, dhb      *gpu.Tensor
}

// NewLossGEMMs allocates the operands, in panels if needed (panels 0 picks
// the fewest that fit).
func NewLossGEMMs(d *gpu.Device, s LossShape, panels int) (*LossGEMMs, error) {
	limit := min(d.Limits.MaxStorageBufferBindingSize, d.Limits.MaxBufferSize)
	if panels == 0 {
		for panels = 1; panels <= s.D; panels++ {
			if s.D%panels == 0 && 4*uint64(s.D/panels)*uint64(s.D) <= limit {
				break
			}
		}
	}
	if panels < 1 || s.D%panels != 0 {
		return nil, fmt.Errorf("bench: %d panels do not divide width %d", panels, s.D)
	}
	g := &LossGEMMs{Panels: panels, d: d, shape: s}
	p := s.D / panels
	rng := rand.New(rand.NewPCG(3, 4))
	var err error
	for _, t := range []struct {
		t     **gpu.Tensor
		shape []int
	}{{&g.ha, []int{s.N, s.D}}, {&g.hb, []int{s.N, s.D}}, {&g.ap, []int{s.N, p}}, {&g.c, []int{p, s.D}},
		{&g.dap, []int{s.N, p}}, {&g.dhb, []int{s.N, s.D}}} {
		if *t.t, err = randomTensor(d, rng, t.shape...); err != nil {
			g.Release()
			return nil, err
		}
	}
	return g, nil
}

// Release frees the operands.
func (g *LossGEMMs) Release() {
	for _, t := range []*gpu.Tensor{g.ha, g.hb, g.ap, g.c, g.dap, g.dhb} {
		t.Release()
	}
}

// Run records the three GEMMs over every panel, submits them and waits.
func (g *LossGEMMs) Run() error {
	n, dim, p := g.shape.N, g.shape.D, g.shape.D/g.Panels
	alpha := 1 / float32(n)
	err := g.d.Run(func(r *gpu.Recorder) error {
		for range g.Panels {
			if err := gpu.Gemm(r, g.c, g.ap, g.hb, gpu.GemmOp{M: p, N: dim, K: n, TransA: true, Alpha: alpha}); err != nil {
				return err
			}
			if err := gpu.Gemm(r, g.dap, g.hb, g.c, gpu.GemmOp{M: n, N: p, K: dim, TransB: true, Alpha: alpha}); err != nil {
				return err
			}
			if err := gpu.Gemm(r, g.dhb, g.ap, g.c, gpu.GemmOp{M: n, N: dim, K: p, Alpha: alpha, Beta: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	g.d.Sync()
	return err
}

// poolBytes is what the pool holds, in use or kept for reuse.
func poolBytes(d *gpu.Device) uint64 {
	m := d.MemStats()
	return m.Live + m.Idle
}

// measure times run for at least min on an emptied pool and reports what
// the pool grew by.
func measure(d *gpu.Device, s LossShape, min time.Duration, setup func() (run func() error, release func(), err error)) (LossPath, error) {
	d.Trim()
	base := poolBytes(d)
	run, release, err := setup()
	if err != nil {
		return LossPath{}, err
	}
	defer release()
	sec, err := Time(min, run)
	if err != nil {
		return LossPath{}, err
	}
	return LossPath{Measured: true, Seconds: sec, GFLOPS: s.Flops() / sec / 1e9, Bytes: poolBytes(d) - base}, nil
}

// MeasureLoss times the fused and the materialised loss, forward and
// backward, and the three GEMMs the fused path replaces, each for at least
// min, on N×D embeddings. The materialised path is left out, with a note,
// where C does not fit in one binding.
func MeasureLoss(d *gpu.Device, n, dim int, min time.Duration) (LossResult, error) {
	s := LossShape{fmt.Sprintf("%dx%d", n, dim), n, dim}
	res := LossResult{Shape: s}
	path := func(fused bool) (LossPath, error) {
		return measure(d, s, min, func() (func() error, func(), error) {
			st, err := NewLossStep(d, s, fused)
			if err != nil {
				return nil, nil, err
			}
			return st.Run, st.Release, nil
		})
	}
	var err error
	if res.Fused, err = path(true); err != nil {
		return res, err
	}
	if !fitsMaterialised(d, dim) {
		res.Materialised.Note = fmt.Sprintf("not run: C [%d, %d] exceeds the adapter's binding limit", dim, dim)
	} else if res.Materialised, err = path(false); err != nil {
		return res, err
	}
	var panels int
	res.GEMMs, err = measure(d, s, min, func() (func() error, func(), error) {
		g, err := NewLossGEMMs(d, s, 0)
		if err != nil {
			return nil, nil, err
		}
		panels = g.Panels
		return g.Run, g.Release, nil
	})
	if err != nil {
		return res, err
	}
	if panels > 1 {
		res.GEMMs.Note = fmt.Sprintf("in %d panels of C", panels)
	}
	return res, nil
}

func fitsMaterialised(d *gpu.Device, dim int) bool {
	return 4*uint64(dim)*uint64(dim) <= min(d.Limits.MaxStorageBufferBindingSize, d.Limits.MaxBufferSize)
}
