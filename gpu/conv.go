package gpu

import (
	"fmt"
	"slices"

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

// operands are the operands of one of s's implicit GEMMs.
func (s ConvShape) operands(a shaders.AOperand, b shaders.BOperand) shaders.GemmOperands {
	return shaders.GemmOperands{A: a, B: b, Conv: shaders.Conv{KH: s.KH, KW: s.KW, Stride: s.Stride, Pad: s.Pad}}
}

// convTile is the tile of a convolution pass's implicit GEMM with m rows, n
// columns and a reduction of k: with ConvTilesAuto the tuned one for its
// class, or else the built-in one; tiles forced by the caller are used as
// forced.
func (d *Device) convTile(form GemmForm, s ConvShape, m, n, k int, tiles ConvTiles) GemmTile {
	builtin := d.convTileBuiltin(m, n, tiles)
	if tiles != ConvTilesAuto {
		return builtin
	}
	return d.tileFor(GemmCase{Class: ClassOf(form, false, false, m, n, k), Conv: s}, builtin)
}

// convTileBuiltin is the tile of a convolution's implicit GEMM with m rows
// and n columns that bt takes without tuning. CPU adapters get direct tiles (shaders/gemm_direct.wgsl) of one
// SIMD row of 8 threads, each with 16 rows × 8 columns of accumulators:
// measured on lavapipe (2-core EPYC, AVX2) against 4 or 16 columns, 8 or 32
// rows and 16 or 32 threads over the tiny ResNet's layers at batch 64, it
// ran them at 15–17 GFLOP/s where the staged 16×256 tiles ran 3–6.
func (d *Device) convTileBuiltin(m, n int, tiles ConvTiles) GemmTile {
	if !d.IsCPU() || tiles == ConvTilesStaged {
		return d.GemmTileFor(m, n)
	}
	tm := min(16, m)
	return GemmTile{BM: tm, TM: tm, BN: 64, TN: 8, BK: 8, Direct: true}
}

// ConvTiles chooses the tiles of a convolution's implicit GEMMs where the
// adapter's choice should not stand: the variants the passes can run in.
type ConvTiles int

const (
	// ConvTilesAuto is the adapter's choice: on CPU adapters direct tiles,
	// on GPUs staged tiles, over every image's positions at once where
	// its planes are small (see flatten).
	ConvTilesAuto ConvTiles = iota
	// ConvTilesStaged is the staged tiles GPUs get, on any adapter.
	ConvTilesStaged
	// ConvTilesPerImage is the adapter's choice, but always one product
	// per image, as products too wide for the grid are.
	ConvTilesPerImage
)

// ConvTileChoices lists every ConvTiles.
func ConvTileChoices() []ConvTiles {
	return []ConvTiles{ConvTilesAuto, ConvTilesStaged, ConvTilesPerImage}
}

func (t ConvTiles) String() string {
	switch t {
	case ConvTilesAuto:
		return "auto"
	case ConvTilesStaged:
		return "staged"
	case ConvTilesPerImage:
		return "per-image"
	}
	return fmt.Sprintf("ConvTiles(%d)", int(t))
}

// checkConv validates a pass's shape, operands and tiles (at most one
// choice, ConvTilesAuto if none) and returns the tiles.
func checkConv(op string, s ConvShape, tiles []ConvTiles, ts ...operand) (ConvTiles, error) {
	if err := s.validate(); err != nil {
		return 0, err
	}
	if len(tiles) > 1 || len(tiles) == 1 && !slices.Contains(ConvTileChoices(), tiles[0]) {
		return 0, fmt.Errorf("gpu: %s: tiles %v: want at most one of %v", op, tiles, ConvTileChoices())
	}
	t := ConvTilesAuto
	if len(tiles) == 1 {
		t = tiles[0]
	}
	return t, checkOperands(fmt.Sprintf("%s %+v", op, s), ts...)
}

// ConvForward writes out = conv(x, w) as an implicit GEMM per image.
// out [N, Cout, OH, OW], x [N, Cin, H, W], w [Cout, Cin, KH, KW]. tiles,
// at most one, overrides the adapter's choice of tiles; so in every pass.
func ConvForward(r *Recorder, out, x, w *Tensor, s ConvShape, tiles ...ConvTiles) error {
	return convForward(r, "ConvForward", out, x, w, nil, shaders.EpilogueNone, s, tiles)
}

// ConvForwardBias writes out = conv(x, w) + bias, bias added per output
// channel, and with relu max(·, 0), in the convolution's own store: a unit
// whose BatchNorm is folded into its weights (models.Fold) in one pass.
// bias [Cout], f32 whatever the activations' type; the rest as ConvForward.
func ConvForwardBias(r *Recorder, out, x, w, bias *Tensor, relu bool, s ConvShape, tiles ...ConvTiles) error {
	ep := shaders.EpilogueBias
	if relu {
		ep = shaders.EpilogueBiasReLU
	}
	return convForward(r, "ConvForwardBias", out, x, w, bias, ep, s, tiles)
}

func convForward(r *Recorder, op string, out, x, w, bias *Tensor, ep shaders.Epilogue, s ConvShape, tiles []ConvTiles) error {
	oh, ow := s.Out()
	kk := s.Cin * s.KH * s.KW
	ops := []operand{{"out", out, s.N * s.Cout * oh * ow},
		{"x", x, s.N * s.Cin * s.H * s.W}, {"w", w, s.Cout * kk}}
	if ep != shaders.EpilogueNone {
		ops = append(ops, operand{"bias", bias, s.Cout})
	}
	t, err := checkConv(op, s, tiles, ops...)
	if err != nil {
		return err
	}
	if bias != nil && bias.DType != F32 {
		return fmt.Errorf("gpu: %s: bias %v must be f32", op, bias)
	}
	tile := r.d.convTile(GemmConvForward, s, s.Cout, oh*ow, kk, t)
	call := gemmCall{ops: s.operands(shaders.ADense, shaders.BIm2col),
		m: s.Cout, n: oh * ow, k: kk, batch: s.N, sa: 0, sb: s.Cin * s.H * s.W, sc: s.Cout * oh * ow,
		alpha: 1, conv: s, tile: tile, kstep: vecStep(tile, kk), bias: bias}
	call.ops.Epilogue = ep
	r.d.flatten(&call, t)
	return gemm(r, out, w, x, call)
}

// flatten turns a convolution product that runs once per image (over z)
// into one product over every image's positions side by side (Flat in
// shaders/gemm_direct.wgsl and gemm_staged.wgsl), where a plane would leave
// over a tenth of its tiles' columns idle and the grid has room: 7×7 and
// 4×4 planes then fill whole tiles. Planes that fill their tiles stay per
// image: there the workgroups of one image run together and share its data
// in the CPU's caches, which measured faster on lavapipe (ResNet-50's 56×56
// 1×1 data gradient: 15 against 11 GFLOP/s with direct tiles).
func (d *Device) flatten(g *gemmCall, tiles ConvTiles) {
	cols := g.n * g.batch
	tiled := (g.n + g.tile.BN - 1) / g.tile.BN * g.tile.BN
	if tiles == ConvTilesPerImage || 10*tiled <= 11*g.n || (cols+g.tile.BN-1)/g.tile.BN > int(d.Limits.MaxComputeWorkgroupsPerDimension) {
		return
	}
	g.n, g.batch = cols, 1
	g.ops.Flat = true
}

// ConvBackwardData writes dx, the gradient of the input, gathering for every
// input pixel the outputs that read it, so no scatter (and no float atomics)
// is needed. dx [N, Cin, H, W], dy [N, Cout, OH, OW], w [Cout, Cin, KH, KW].
//
// A strided convolution reads an input pixel only through the taps that
// land it on an output, which depend on the pixel's phase (y mod stride,
// x mod stride): one product per phase over just those taps does a
// stride²-th of the work of gathering every tap for every pixel.
func ConvBackwardData(r *Recorder, dx, dy, w *Tensor, s ConvShape, tiles ...ConvTiles) error {
	oh, ow := s.Out()
	t, err := checkConv("ConvBackwardData", s, tiles, operand{"dx", dx, s.N * s.Cin * s.H * s.W},
		operand{"dy", dy, s.N * s.Cout * oh * ow}, operand{"w", w, s.Cout * s.Cin * s.KH * s.KW})
	if err != nil {
		return err
	}
	var phases []convPhase
	untouched := false // pixels that no output reads: their gradient is zero
	for py := range min(s.Stride, s.H) {
		for px := range min(s.Stride, s.W) {
			ph := s.phase(py, px)
			if ph.ty == 0 || ph.tx == 0 {
				untouched = true
				continue
			}
			phases = append(phases, ph)
		}
	}
	if untouched {
		if err := Fill(r, dx, 0); err != nil {
			return err
		}
	}
	for _, ph := range phases {
		if err := convBackwardDataPhase(r, dx, dy, w, s, ph, t); err != nil {
			return err
		}
	}
	return nil
}

// convPhase is the input pixels (py + stride·i, px + stride·j), ny×nx of
// them, and the ty×tx taps (ky0 + stride·a, kx0 + stride·b) through which
// they are read: the pixel (i, j) reaches the output (i + qy − a, j + qx − b).
type convPhase struct {
	py, px, ny, nx   int
	ky0, kx0, ty, tx int
	qy, qx           int
}

func (s ConvShape) phase(py, px int) convPhase {
	st := s.Stride
	ky0, kx0 := (py+s.Pad)%st, (px+s.Pad)%st
	taps := func(k, k0 int) int { return max(0, (k-k0+st-1)/st) }
	return convPhase{py: py, px: px, ny: (s.H - py + st - 1) / st, nx: (s.W - px + st - 1) / st,
		ky0: ky0, kx0: kx0, ty: taps(s.KH, ky0), tx: taps(s.KW, kx0),
		qy: (py + s.Pad - ky0) / st, qx: (px + s.Pad - kx0) / st}
}

// convBackwardDataPhase writes dx at one phase's pixels. The phase's taps
// of W are first laid out as the dense [Cin, Cout·TY·TX] matrix the product
// reads (vec4 rows on direct tiles): a pass over the weights, small beside
// the product.
func convBackwardDataPhase(r *Recorder, dx, dy, w *Tensor, s ConvShape, ph convPhase, t ConvTiles) error {
	k := s.Cout * ph.ty * ph.tx
	wt, err := r.d.NewTensorOf(w.DType, s.Cin, k)
	if err != nil {
		return err
	}
	defer wt.Release()
	// wt[ic, (oc·TY + a)·TX + b] = w[oc, ic, ky0 + stride·a, kx0 + stride·b]
	expr := fmt.Sprintf("w[((i %% %du / %du * %du + i / %du) * %du + %du + %du * (i %% %du / %du)) * %du + %du + %du * (i %% %du)]",
		k, ph.ty*ph.tx, s.Cin, k, s.KH, ph.ky0, s.Stride, ph.ty*ph.tx, ph.tx, s.KW, ph.kx0, s.Stride, ph.tx)
	if err := gather(r, "ConvBackwardData", expr, "w", wt, w); err != nil {
		return err
	}
	ops := s.operands(shaders.ADense, shaders.BDyCol)
	ops.Phase = shaders.Phase{PY: ph.py, PX: ph.px, TY: ph.ty, TX: ph.tx, QY: ph.qy, QX: ph.qx}
	n := ph.ny * ph.nx
	tile := r.d.convTile(GemmConvData, s, s.Cin, n, k, t)
	call := gemmCall{ops: ops, m: s.Cin, n: n, k: k, batch: s.N, sc: s.Cin * s.H * s.W,
		alpha: 1, conv: s, tile: tile, kstep: vecStep(tile, k)}
	r.d.flatten(&call, t)
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

// convSplitTarget is how many workgroups the weight gradient aims for
// unless its tile sets SplitK: its output (Cout × Cin·KH·KW) is small while
// its reduction (N·OH·OW) is long, so the reduction is split into chunks
// that run in parallel.
func (d *Device) convSplitTarget() int {
	if d.IsCPU() {
		return 16
	}
	return 512
}

// ConvBackwardWeight accumulates dw += the gradient of the weights.
// dw [Cout, Cin, KH, KW], dy [N, Cout, OH, OW], x [N, Cin, H, W].
func ConvBackwardWeight(r *Recorder, dw, dy, x *Tensor, s ConvShape, tiles ...ConvTiles) error {
	oh, ow := s.Out()
	kk := s.Cin * s.KH * s.KW
	t, err := checkConv("ConvBackwardWeight", s, tiles, operand{"dw", dw, s.Cout * kk},
		operand{"dy", dy, s.N * s.Cout * oh * ow}, operand{"x", x, s.N * s.Cin * s.H * s.W})
	if err != nil {
		return err
	}
	tile := r.d.convTile(GemmConvWeight, s, s.Cout, kk, s.N*oh*ow, t)
	red := s.N * oh * ow
	grid := ((s.Cout + tile.BM - 1) / tile.BM) * ((kk + tile.BN - 1) / tile.BN)
	splits := tile.SplitK
	if splits == 0 {
		splits = max(1, min((r.d.convSplitTarget()+grid-1)/grid, red/(16*tile.BK)))
	}
	if tile.Direct {
		// Each chunk within the loop limit of CPU adapters, with room
		// for rounding the chunk up to a multiple of BK.
		steps := MaxLoopSteps * vecStep(tile, oh*ow)
		splits = max(splits, (red+steps-2*tile.BK-1)/(steps-2*tile.BK))
	}
	chunk := ((red+splits-1)/splits + tile.BK - 1) / tile.BK * tile.BK
	splits = (red + chunk - 1) / chunk
	call := gemmCall{ops: s.operands(shaders.ADy, shaders.BIm2colT),
		m: s.Cout, n: kk, k: red, batch: splits, sc: s.Cout * kk, alpha: 1, conv: s, kchunk: chunk, tile: tile,
		kstep: vecStep(tile, oh*ow)}
	call.ops.SplitK = true
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
