// Package bench measures bt's kernels on the adapter at hand and, where a
// CPU reference is cheap to call, the same work on the CPU in the same run,
// so every figure comes with a ratio measured beside it. `go test -bench`
// in this directory and `bt bench` both use it.
package bench

import (
	"fmt"
	"math/rand/v2"
	"time"

	"gonum.org/v1/gonum/blas"
	"gonum.org/v1/gonum/blas/blas32"

	"github.com/bt-org/bt/gpu"
)

// GemmShape is one benchmarked product: C[M,N] = A[M,K]·B[K,N].
type GemmShape struct {
	Name    string
	M, N, K int
}

// GemmShapes are the shapes the GEMM benchmark covers: squares from 128 to
// 4096, and the products of a Barlow Twins projector at batch 256
// (2048 → 8192 forward, and its weight gradient).
var GemmShapes = []GemmShape{
	{"square-128", 128, 128, 128},
	{"square-256", 256, 256, 256},
	{"square-512", 512, 512, 512},
	{"square-1024", 1024, 1024, 1024},
	{"square-2048", 2048, 2048, 2048},
	{"square-4096", 4096, 4096, 4096},
	{"projector-256x2048x8192", 256, 8192, 2048},
	{"projector-wgrad-8192x2048x256", 8192, 2048, 256},
}

// Flops is the number of floating-point operations of the product.
func (s GemmShape) Flops() float64 { return 2 * float64(s.M) * float64(s.N) * float64(s.K) }

// Gemm holds the operands of one GEMM on the device.
type Gemm struct {
	Shape   GemmShape
	d       *gpu.Device
	a, b, c *gpu.Tensor
	ha, hb  []float32
}

// NewGemm allocates random operands for shape on d.
func NewGemm(d *gpu.Device, s GemmShape) (*Gemm, error) { return NewGemmOf(d, s, gpu.F32) }

// NewGemmOf is NewGemm with A, B and C stored as t (f16: mixed precision,
// the sums in f32).
func NewGemmOf(d *gpu.Device, s GemmShape, t gpu.DType) (*Gemm, error) {
	g := &Gemm{Shape: s, d: d}
	rng := rand.New(rand.NewPCG(1, 2))
	g.ha = make([]float32, s.M*s.K)
	g.hb = make([]float32, s.K*s.N)
	for i := range g.ha {
		g.ha[i] = float32(rng.NormFloat64())
	}
	for i := range g.hb {
		g.hb[i] = float32(rng.NormFloat64())
	}
	for _, x := range []struct {
		p     **gpu.Tensor
		v     []float32
		shape []int
	}{{&g.a, g.ha, []int{s.M, s.K}}, {&g.b, g.hb, []int{s.K, s.N}}, {&g.c, nil, []int{s.M, s.N}}} {
		var err error
		if *x.p, err = d.NewTensorOf(t, x.shape...); err == nil && x.v != nil {
			err = (*x.p).Upload(x.v)
		}
		if err != nil {
			g.Release()
			return nil, err
		}
	}
	return g, nil
}

// Release frees the operands.
func (g *Gemm) Release() {
	for _, t := range []*gpu.Tensor{g.a, g.b, g.c} {
		t.Release()
	}
}

// Run records reps products into one submission and waits for them.
func (g *Gemm) Run(reps int) error {
	s := g.Shape
	err := g.d.Run(func(r *gpu.Recorder) error {
		for range reps {
			if err := gpu.Gemm(r, g.c, g.a, g.b, gpu.GemmOp{M: s.M, N: s.N, K: s.K, Alpha: 1}); err != nil {
				return err
			}
		}
		return nil
	})
	g.d.Sync()
	return err
}

// CPU runs the same product once through gonum's BLAS.
func (g *Gemm) CPU() {
	s := g.Shape
	c := make([]float32, s.M*s.N)
	blas32.Gemm(blas.NoTrans, blas.NoTrans, 1,
		blas32.General{Rows: s.M, Cols: s.K, Stride: s.K, Data: g.ha},
		blas32.General{Rows: s.K, Cols: s.N, Stride: s.N, Data: g.hb},
		0, blas32.General{Rows: s.M, Cols: s.N, Stride: s.N, Data: c})
}

// Time measures the seconds one call of fn takes: once to warm up (compile
// kernels, fault in memory), then repeatedly until at least min has passed.
func Time(min time.Duration, fn func() error) (float64, error) {
	if err := fn(); err != nil {
		return 0, err
	}
	n := 0
	start := time.Now()
	for n == 0 || time.Since(start) < min {
		if err := fn(); err != nil {
			return 0, err
		}
		n++
	}
	return time.Since(start).Seconds() / float64(n), nil
}

// GemmResult is a measured GEMM on the adapter and on the CPU reference.
type GemmResult struct {
	Shape        GemmShape
	GFLOPS       float64
	CPUGFLOPS    float64 // gonum, same process, same run
	Tile         gpu.GemmTile
	AdapterBytes uint64
}

func (r GemmResult) String() string {
	return fmt.Sprintf("%-32s %8.1f GFLOP/s   gonum %7.1f GFLOP/s   ratio %5.2f   tile %dx%d/%d %dx%d",
		r.Shape.Name, r.GFLOPS, r.CPUGFLOPS, r.GFLOPS/r.CPUGFLOPS, r.Tile.BM, r.Tile.BN, r.Tile.BK, r.Tile.TM, r.Tile.TN)
}

// MeasureGemm times shape on d and on gonum, each for at least min.
func MeasureGemm(d *gpu.Device, s GemmShape, min time.Duration) (GemmResult, error) {
	g, err := NewGemm(d, s)
	if err != nil {
		return GemmResult{}, err
	}
	defer g.Release()
	sec, err := Time(min, func() error { return g.Run(1) })
	if err != nil {
		return GemmResult{}, err
	}
	cpu, _ := Time(min, func() error { g.CPU(); return nil })
	return GemmResult{Shape: s, GFLOPS: s.Flops() / sec / 1e9, CPUGFLOPS: s.Flops() / cpu / 1e9,
		Tile: d.DenseTile(gpu.GemmOp{M: s.M, N: s.N, K: s.K}), AdapterBytes: 4 * uint64(s.M*s.K+s.K*s.N+s.M*s.N)}, nil
}
