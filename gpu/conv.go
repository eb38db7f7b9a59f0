package gpu

import (
	"fmt"

	"github.com/bt-org/bt/shaders"
)

// ConvShape describes a 2-D convolution over an NCHW batch: N images of Cin
// channels, H×W pixels, producing Cout channels with a KH×KW kernel, stride
// and zero padding on every side.
type ConvShape struct {
	N, Cin, H, W int
	Cout, KH, KW int
	Stride, Pad  int
}

// Out is the output's height and width.
func (s ConvShape) Out() (oh, ow int) {
	if s.Stride < 1 {
		return 0, 0
	}
	return (s.H+2*s.Pad-s.KH)/s.Stride + 1, (s.W+2*s.Pad-s.KW)/s.Stride + 1
}

func (s ConvShape) validate() error {
	oh, ow := s.Out()
	if s.N < 1 || s.Cin < 1 || s.H < 1 || s.W < 1 || s.Cout < 1 || s.KH < 1 || s.KW < 1 || s.Stride < 1 || s.Pad < 0 || oh < 1 || ow < 1 {
		return fmt.Errorf("gpu: convolution %+v: sizes must be ≥ 1, padding ≥ 0, and the kernel must fit the padded input", s)
	}
	return nil
}

func (s ConvShape) spec(a, b string, akFast, bkFast bool) shaders.Spec {
	return shaders.Spec{"A": a, "B": b, "AKFast": akFast, "BKFast": bkFast, "TransA": false, "TransB": false,
		"Conv": true, "KH": s.KH, "KW": s.KW, "Stride": s.Stride, "Pad": s.Pad}
}

// convTile is the tile of a convolution's implicit GEMM with m rows and n
// columns. CPU adapters get direct tiles (see shaders/gemm.wgsl) of one
// SIMD row of 8 threads, each with 16 rows × 8 columns of accumulators:
// measured on lavapipe (2-core EPYC, AVX2) against 4 or 16 columns, 8 or 32
// rows and 16 or 32 threads over the tiny ResNet's layers at batch 64, it
// ran them at 15–17 GFLOP/s where the staged 16×256 tiles ran 3–6.
func (d *Device) convTile(m, n int) GemmTile {
	if !d.IsCPU() || stagedConvTiles {
		return d.GemmTileFor(m, n)
	}
	tm := min(16, m)
	return GemmTile{BM: tm, TM: tm, BN: 64, TN: 8, BK: 8, Direct: true}
}

// stagedConvTiles makes CPU adapters use GPU tiles too, so that tests on
// lavapipe cover both.
var stagedConvTiles = false

func checkConv(op string, s ConvShape, ts ...operand) error {
	if err := s.validate(); err != nil {
		return err
	}
	return checkOperands(fmt.Sprintf("%s %+v", op, s), ts...)
}

// ConvForward writes out = conv(x, w) as an implicit GEMM per image.
// out [N, Cout, OH, OW], x [N, Cin, H, W], w [Cout, Cin, KH, KW].
func ConvForward(r *Recorder, out, x, w *Tensor, s ConvShape) error {
	oh, ow := s.Out()
	kk := s.Cin * s.KH * s.KW
	if err := checkConv("ConvForward", s, operand{"out", out, s.N * s.Cout * oh * ow},
		operand{"x", x, s.N * s.Cin * s.H * s.W}, operand{"w", w, s.Cout * kk}); err != nil {
		return err
	}
	tile := r.d.convTile(s.Cout, oh*ow)
	return gemm(r, out, w, x, gemmCall{spec: s.spec("dense", "im2col", true, false),
		m: s.Cout, n: oh * ow, k: kk, batch: s.N, sa: 0, sb: s.Cin * s.H * s.W, sc: s.Cout * oh * ow,
		alpha: 1, conv: s, tile: tile, kstep: vecStep(tile, kk)})
}

// ConvBackwardData writes dx, the gradient of the input, gathering for every
// input pixel the outputs that read it, so no scatter (and no float atomics)
// is needed. dx [N, Cin, H, W], dy [N, Cout, OH, OW], w [Cout, Cin, KH, KW].
func ConvBackwardData(r *Recorder, dx, dy, w *Tensor, s ConvShape) error {
	oh, ow := s.Out()
	if err := checkConv("ConvBackwardData", s, operand{"dx", dx, s.N * s.Cin * s.H * s.W},
		operand{"dy", dy, s.N * s.Cout * oh * ow}, operand{"w", w, s.Cout * s.Cin * s.KH * s.KW}); err != nil {
		return err
	}
	tile := r.d.convTile(s.Cin, s.H*s.W)
	call := gemmCall{spec: s.spec("convw_t", "dy_col", true, false),
		m: s.Cin, n: s.H * s.W, k: s.Cout * s.KH * s.KW, batch: s.N, sc: s.Cin * s.H * s.W,
		alpha: 1, conv: s, tile: tile}
	if call.kstep = vecStep(tile, call.k); call.kstep == 1 {
		return gemm(r, dx, w, dy, call)
	}
	// Direct tiles read A as vec4 rows, so W is first laid out as the
	// dense [Cin, Cout·KH·KW] matrix the gather would read: a pass over
	// the weights, small beside the product.
	wt, err := r.d.NewTensor(s.Cin, call.k)
	if err != nil {
		return err
	}
	defer wt.Release()
	taps := s.KH * s.KW
	expr := fmt.Sprintf("w[((i / %du) %% %du * %du + i / %du) * %du + i %% %du]", taps, s.Cout, s.Cin, call.k, taps, taps)
	if err := elementwise(r, "ConvBackwardData", expr, []string{"w"}, 0, 0, 0, wt, w); err != nil {
		return err
	}
	call.spec["A"] = "dense"
	return gemm(r, dx, wt, dy, call)
}

// vecStep is the reduction step of a direct tile over a reduction of k
// whose rows of A start at multiples of k: 4 where they are vec4-aligned.
func vecStep(t GemmTile, k int) int {
	if t.Direct && k%4 == 0 {
		return 4
	}
	return 1
}

// convSplitTarget is how many workgroups the weight gradient aims for: its
// output (Cout × Cin·KH·KW) is small while its reduction (N·OH·OW) is long,
// so the reduction is split into chunks that run in parallel.
func (d *Device) convSplitTarget() int {
	if d.IsCPU() {
		return 16
	}
	return 512
}

// ConvBackwardWeight accumulates dw += the gradient of the weights.
// dw [Cout, Cin, KH, KW], dy [N, Cout, OH, OW], x [N, Cin, H, W].
func ConvBackwardWeight(r *Recorder, dw, dy, x *Tensor, s ConvShape) error {
	oh, ow := s.Out()
	kk := s.Cin * s.KH * s.KW
	if err := checkConv("ConvBackwardWeight", s, operand{"dw", dw, s.Cout * kk},
		operand{"dy", dy, s.N * s.Cout * oh * ow}, operand{"x", x, s.N * s.Cin * s.H * s.W}); err != nil {
		return err
	}
	tile := r.d.convTile(s.Cout, kk)
	red := s.N * oh * ow
	tiles := ((s.Cout + tile.BM - 1) / tile.BM) * ((kk + tile.BN - 1) / tile.BN)
	splits := max(1, min((r.d.convSplitTarget()+tiles-1)/tiles, red/(16*tile.BK)))
	chunk := ((red+splits-1)/splits + tile.BK - 1) / tile.BK * tile.BK
	splits = (red + chunk - 1) / chunk
	call := gemmCall{spec: s.spec("dy", "im2col_t", true, true),
		m: s.Cout, n: kk, k: red, batch: splits, sc: s.Cout * kk, alpha: 1, conv: s, kchunk: chunk, tile: tile,
		kstep: vecStep(tile, oh*ow)}
	call.spec["SplitK"] = true
	if splits == 1 {
		call.beta = 1
		return gemm(r, dw, dy, x, call)
	}
	// Partial products per chunk, summed into dw. The partial tensor goes
	// back to the pool at once: anything recorded later that reuses it runs
	// after the sum that reads it.
	part, err := r.d.NewTensor(splits, s.Cout*kk)
	if err != nil {
		return err
	}
	defer part.Release()
	if err := gemm(r, part, dy, x, call); err != nil {
		return err
	}
	return AccumulateSum(r, dw, part, splits, s.Cout*kk, 1)
}
