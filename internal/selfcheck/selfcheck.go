// Package selfcheck is bt's kernel self-check: one named check per kernel
// path, together covering every shader file in shaders/, each comparing the
// device with a float64 reference through kcheck on fresh random inputs of
// shapes that are multiples of no tile or workgroup. `bt devices` runs it
// on the adapter it describes; this package's test runs it on the test
// adapter and fails if a shader file is dispatched by no check. Its cases
// (ConvOps, GemmCheck, MaxPoolLayer, ...) are declared once, with their
// shapes, tolerances and references, for the packages' own tests too, which
// run them over many more shapes and storage types.
package selfcheck

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"

	"github.com/bt-org/bt/augment"
	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
	"github.com/bt-org/bt/layers"
	"github.com/bt-org/bt/pipeline"
	"github.com/bt-org/bt/shaders"
)

// Check is one named kernel check. Which shader files it runs is measured
// (gpu.Device.Dispatches), not declared: it depends on the adapter (direct
// GEMM tiles and serial BatchNorm on CPU adapters).
type Check struct {
	Name string
	Run  func(d *gpu.Device, rng *rand.Rand) error
}

// Checks is the suite, in the order `bt devices` prints it.
func Checks() []Check {
	var cs []Check
	for _, f := range []func() []Check{gemmChecks, convChecks, elementwiseChecks, reduceChecks, batchNormChecks,
		lossChecks, optimChecks, poolChecks, rowNormChecks, xentChecks, augmentChecks, fmaChecks, subgroupChecks} {
		cs = append(cs, f()...)
	}
	return cs
}

func op(name string, o kcheck.Op) Check {
	return Check{name, func(d *gpu.Device, rng *rand.Rand) error { return kcheck.Run(d, rng, o) }}
}

func layer(name string, l kcheck.Layer) Check {
	return Check{name, func(d *gpu.Device, rng *rand.Rand) error { return kcheck.RunLayer(d, rng, l) }}
}

// directTile is a direct GEMM tile (gemm_direct.wgsl), forced so that
// adapters whose default is the staged kernel check it too.
var directTile = gpu.GemmTile{BM: 16, TM: 16, BN: 64, TN: 8, BK: 8, Direct: true}

func gemmChecks() []Check {
	var cs []Check
	gemm := func(name string, batch, m, n, k int, ta, tb bool, beta float32, tile gpu.GemmTile) Check {
		name = fmt.Sprintf("gemm %s %dx%dx%d", name, m, n, k)
		for _, s := range []struct {
			on   bool
			text string
		}{{batch > 1, fmt.Sprintf(" batch %d", batch)}, {ta, " Aᵀ"}, {tb, " Bᵀ"}, {beta != 0, fmt.Sprintf(" +%gC", beta)}} {
			if s.on {
				name += s.text
			}
		}
		return op(name, GemmCheck(gpu.GemmOp{M: m, N: n, K: k, Batch: batch, TransA: ta, TransB: tb, Alpha: 1.5, Beta: beta, Tile: tile},
			gpu.F32, gpu.F32, gpu.F32))
	}
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			cs = append(cs, gemm("(adapter's tile)", 1, 65, 129, 17, ta, tb, 0, gpu.GemmTile{}))
		}
	}
	return append(cs,
		gemm("(staged 32x64 tile)", 3, 17, 33, 9, true, false, 0.5, gpu.GemmTile{BM: 32, BN: 64, BK: 8, TM: 4, TN: 8}),
		gemm("(direct tile)", 3, 17, 33, 9, false, true, 0.5, directTile),
		gemm("(direct tile)", 1, 65, 129, 17, true, false, 0, directTile))
}

// GemmCheck is the check of g, whose C, A and B are stored as c, a and b:
// C starts random where g.Beta is not 0, and is held to kcheck.Reduction,
// or kcheck.HalfStorage where c is f16. The suite's and gpu's tests alike.
func GemmCheck(g gpu.GemmOp, c, a, b gpu.DType) kcheck.Op {
	tol := kcheck.Reduction
	if c == gpu.F16 {
		tol = kcheck.HalfStorage
	}
	return kcheck.Op{
		Inputs:     [][]int{{g.Batch, g.M, g.K}, {g.Batch, g.K, g.N}},
		Outputs:    [][]int{{g.Batch, g.M, g.N}},
		Accumulate: []bool{g.Beta != 0},
		InTypes:    []gpu.DType{a, b},
		OutTypes:   []gpu.DType{c},
		Tol:        tol,
		GPU:        func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.Gemm(r, o[0], i[0], i[1], g) },
		Ref: func(o, i [][]float64) {
			ref.Gemm(o[0], i[0], i[1], g.Batch, g.M, g.N, g.K, g.TransA, g.TransB, float64(g.Alpha), float64(g.Beta))
		},
	}
}

// convChecks are the three passes of a strided convolution with odd sizes
// (phases of the data gradient with and without taps, a split weight
// gradient) and of one whose reductions are multiples of 4 (the direct
// tiles' vec4 reads of A).
func convChecks() []Check {
	var cs []Check
	for _, s := range []gpu.ConvShape{
		{N: 2, Cin: 3, H: 17, W: 13, Cout: 5, KH: 3, KW: 3, Stride: 2, Pad: 1},
		{N: 3, Cin: 4, H: 5, W: 5, Cout: 8, KH: 3, KW: 3, Stride: 1, Pad: 1},
	} {
		for _, c := range ConvOps(s, kcheck.Reduction, gpu.F32, gpu.ConvTilesAuto) {
			cs = append(cs, op(c.Name, c.Op))
		}
	}
	return cs
}

// NamedOp is a kernel check with its name.
type NamedOp struct {
	Name string
	Op   kcheck.Op
}

// ConvOps are the checks of the three passes of convolution s with the
// given tiles, held to tol, with activations, weights and the data
// gradient stored as act: with f16, the forward pass and the data
// gradient, stored as f16, are held to kcheck.HalfStorage, and the weight
// gradient, accumulated into f32, to tol. The suite's and gpu's tests
// alike.
func ConvOps(s gpu.ConvShape, tol float64, act gpu.DType, tiles gpu.ConvTiles) []NamedOp {
	oh, ow := s.Out()
	xs, ws, ys := []int{s.N, s.Cin, s.H, s.W}, []int{s.Cout, s.Cin, s.KH, s.KW}, []int{s.N, s.Cout, oh, ow}
	rs := ref.ConvShape{N: s.N, Cin: s.Cin, H: s.H, W: s.W, Cout: s.Cout, KH: s.KH, KW: s.KW, Stride: s.Stride, Pad: s.Pad}
	name := fmt.Sprintf("%dx%dx%dx%d -> %d, %dx%d stride %d pad %d", s.N, s.Cin, s.H, s.W, s.Cout, s.KH, s.KW, s.Stride, s.Pad)
	if tiles != gpu.ConvTilesAuto {
		name += fmt.Sprintf(", %v tiles", tiles)
	}
	if act != gpu.F32 {
		name += fmt.Sprintf(", %v", act)
	}
	stored, acts := tol, []gpu.DType{act, act, act}
	if act == gpu.F16 {
		stored = kcheck.HalfStorage
	}
	return []NamedOp{
		{"conv forward " + name, kcheck.Op{Inputs: [][]int{xs, ws}, Outputs: [][]int{ys}, Tol: stored, InTypes: acts[:2], OutTypes: acts[:1],
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ConvForward(r, o[0], i[0], i[1], s, tiles) },
			Ref: func(o, i [][]float64) { copy(o[0], ref.ConvForward(rs, i[0], i[1], nil)) }}},
		{"conv forward with bias " + name, convBiasOp(s, rs, stored, act, tiles, false)},
		{"conv forward with bias and ReLU " + name, convBiasOp(s, rs, stored, act, tiles, true)},
		{"conv data gradient " + name, kcheck.Op{Inputs: [][]int{ys, ws, xs}, Outputs: [][]int{xs}, Tol: stored, InTypes: acts, OutTypes: acts[:1],
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				return gpu.ConvBackwardData(r, o[0], i[0], i[1], s, tiles)
			},
			Ref: func(o, i [][]float64) {
				dx, _, _ := ref.ConvBackward(rs, i[2], i[1], nil, i[0])
				copy(o[0], dx)
			}}},
		{"conv weight gradient " + name, kcheck.Op{Inputs: [][]int{ys, xs}, Outputs: [][]int{ws}, Accumulate: []bool{true}, Tol: tol, InTypes: acts[:2],
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				return gpu.ConvBackwardWeight(r, o[0], i[0], i[1], s, tiles)
			},
			Ref: func(o, i [][]float64) {
				_, dw, _ := ref.ConvBackward(rs, i[1], make([]float64, len(o[0])), nil, i[0])
				for j := range dw {
					o[0][j] += dw[j]
				}
			}}},
	}
}

// convBiasOp checks ConvForwardBias: the convolution, its f32 bias per
// output channel and, with relu, the ReLU, against float64.
func convBiasOp(s gpu.ConvShape, rs ref.ConvShape, tol float64, act gpu.DType, tiles gpu.ConvTiles, relu bool) kcheck.Op {
	oh, ow := s.Out()
	return kcheck.Op{Inputs: [][]int{{s.N, s.Cin, s.H, s.W}, {s.Cout, s.Cin, s.KH, s.KW}, {s.Cout}}, Outputs: [][]int{{s.N, s.Cout, oh, ow}},
		Tol: tol, InTypes: []gpu.DType{act, act, gpu.F32}, OutTypes: []gpu.DType{act},
		GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
			return gpu.ConvForwardBias(r, o[0], i[0], i[1], i[2], relu, s, tiles)
		},
		Ref: func(o, i [][]float64) {
			y := ref.ConvForward(rs, i[0], i[1], i[2])
			for j, v := range y {
				if relu {
					v = max(v, 0)
				}
				o[0][j] = v
			}
		}}
}

func elementwiseChecks() []Check {
	const n = 4099
	var cs []Check
	for _, e := range ElementwiseOps() {
		cs = append(cs, op(fmt.Sprintf("elementwise %s %d", e.Name, n), e.Check(n, nil, nil)))
	}
	return append(cs, op("channel bias 3x17x49", AddBiasCheck(3, 17, 49)))
}

// Elementwise is one of gpu's elementwise operations, y = f(y, x0, x1),
// with its float64 reference.
type Elementwise struct {
	Name       string
	Inputs     int  // the tensors x it reads
	Accumulate bool // whether it reads y too
	GPU        func(r *gpu.Recorder, y *gpu.Tensor, x []*gpu.Tensor) error
	Ref        func(y, x0, x1 float64) float64
	// OneSign draws y and x of one sign: a kernel that rounds twice (a
	// product, then a sum) errs relative to the product, so where the sum
	// nearly cancels, its relative error would measure the cancellation.
	OneSign bool
}

// ElementwiseOps lists gpu's elementwise operations, in place where they
// may run so.
func ElementwiseOps() []Elementwise {
	return []Elementwise{
		{"Add", 2, false, func(r *gpu.Recorder, y *gpu.Tensor, x []*gpu.Tensor) error { return gpu.Add(r, y, x[0], x[1]) },
			func(_, a, b float64) float64 { return a + b }, false},
		{"AddReLU", 2, false, func(r *gpu.Recorder, y *gpu.Tensor, x []*gpu.Tensor) error { return gpu.AddReLU(r, y, x[0], x[1]) },
			func(_, a, b float64) float64 { return math.Max(a+b, 0) }, false},
		{"Scale", 1, false, func(r *gpu.Recorder, y *gpu.Tensor, x []*gpu.Tensor) error { return gpu.Scale(r, y, x[0], -1.75) },
			func(_, a, _ float64) float64 { return -1.75 * a }, false},
		{"Axpy", 1, true, func(r *gpu.Recorder, y *gpu.Tensor, x []*gpu.Tensor) error { return gpu.Axpy(r, y, x[0], 0.3) },
			func(y, a, _ float64) float64 { return y + float64(float32(0.3))*a }, true},
		{"Fill", 0, false, func(r *gpu.Recorder, y *gpu.Tensor, _ []*gpu.Tensor) error { return gpu.Fill(r, y, 2.5) },
			func(_, _, _ float64) float64 { return 2.5 }, false},
		{"ReLU", 1, false, func(r *gpu.Recorder, y *gpu.Tensor, x []*gpu.Tensor) error { return gpu.ReLU(r, y, x[0]) },
			func(_, a, _ float64) float64 { return math.Max(a, 0) }, false},
		{"ReLUInPlace", 0, true, func(r *gpu.Recorder, y *gpu.Tensor, _ []*gpu.Tensor) error { return gpu.ReLU(r, y, y) },
			func(y, _, _ float64) float64 { return math.Max(y, 0) }, false},
		{"ScaleInPlace", 0, true, func(r *gpu.Recorder, y *gpu.Tensor, _ []*gpu.Tensor) error { return gpu.Scale(r, y, y, 1024) },
			func(y, _, _ float64) float64 { return 1024 * y }, false},
		{"ReLUBackward", 2, false, func(r *gpu.Recorder, y *gpu.Tensor, x []*gpu.Tensor) error {
			return gpu.ReLUBackward(r, y, x[0], x[1])
		}, func(_, dy, x float64) float64 {
			if x > 0 {
				return dy
			}
			return 0
		}, false},
	}
}

// Check is e's check on n elements, y stored as out and the inputs as in
// (nil: f32), held to kcheck.Elementwise, or kcheck.HalfStorage where y
// is f16: the suite's and gpu's tests alike.
func (e Elementwise) Check(n int, out, in []gpu.DType) kcheck.Op {
	ins := make([][]int, e.Inputs)
	for i := range ins {
		ins[i] = []int{n}
	}
	tol := kcheck.Elementwise
	if len(out) > 0 && out[0] == gpu.F16 {
		tol = kcheck.HalfStorage
	}
	var draw func(r *rand.Rand, i, n int) []float64
	if e.OneSign {
		draw = func(r *rand.Rand, _, n int) []float64 {
			v := kcheck.Normal(r, n)
			for i := range v {
				v[i] = math.Abs(v[i])
			}
			return v
		}
	}
	return kcheck.Op{
		Inputs: ins, Outputs: [][]int{{n}}, Accumulate: []bool{e.Accumulate}, Tol: tol, InTypes: in, OutTypes: out,
		Draw: draw, Start: draw,
		GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error { return e.GPU(r, outs[0], ins) },
		Ref: func(outs, ins [][]float64) {
			for i := range outs[0] {
				var a, b float64
				if len(ins) > 0 {
					a = ins[0][i]
				}
				if len(ins) > 1 {
					b = ins[1][i]
				}
				outs[0][i] = e.Ref(outs[0][i], a, b)
			}
		},
	}
}

// AddBiasCheck is the check of gpu.AddBias on y [outer, ch, inner]: the
// suite's and gpu's tests alike.
func AddBiasCheck(outer, ch, inner int) kcheck.Op {
	return kcheck.Op{
		Inputs: [][]int{{ch}}, Outputs: [][]int{{outer, ch, inner}}, Accumulate: []bool{true}, Tol: kcheck.Elementwise,
		GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
			return gpu.AddBias(r, outs[0], ins[0], inner, ch)
		},
		Ref: func(outs, ins [][]float64) {
			for i := range outs[0] {
				outs[0][i] += ins[0][(i/inner)%ch]
			}
		},
	}
}

func reduceChecks() []Check {
	return []Check{
		op("column sum 129x65", ReduceCheck(gpu.Sum, 129, 65, 1, gpu.F32)),
		op("row sum of squares 65x129", ReduceCheck(gpu.SumSq, 1, 65, 129, gpu.F32)),
		op("mean/var 17x65x9", MeanVarCheck(17, 65, 9)),
	}
}

// ReduceCheck is the check of gpu.Reduce's op over x [a, b, c] stored as
// ty: the suite's and gpu's tests alike.
func ReduceCheck(op gpu.ReduceOp, a, b, c int, ty gpu.DType) kcheck.Op {
	f := func(v float64) float64 { return v }
	if op == gpu.SumSq {
		f = func(v float64) float64 { return v * v }
	}
	return kcheck.Op{
		Inputs: [][]int{{a, b, c}}, Outputs: [][]int{{b}}, Tol: kcheck.Reduction, InTypes: []gpu.DType{ty},
		GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
			return gpu.Reduce(r, outs[0], ins[0], a, b, c, op)
		},
		Ref: func(outs, ins [][]float64) {
			ref.Reduce3(outs[0], ins[0], a, b, c, f)
			if op == gpu.Mean {
				for j := range outs[0] {
					outs[0][j] /= float64(a * c)
				}
			}
		},
	}
}

// MeanVarCheck is the check of gpu.MeanVar over x [a, b, c] with a large
// common offset, where E[x²]−E[x]² would fail: the suite's and gpu's
// tests alike.
func MeanVarCheck(a, b, c int) kcheck.Op {
	return kcheck.Op{
		Inputs: [][]int{{a, b, c}}, Outputs: [][]int{{b}, {b}}, Tol: kcheck.Reduction,
		Draw: func(r *rand.Rand, _, n int) []float64 {
			v := kcheck.Normal(r, n)
			for i := range v {
				v[i] += 1000
			}
			return v
		},
		GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
			return gpu.MeanVar(r, outs[0], outs[1], ins[0], a, b, c)
		},
		Ref: func(outs, ins [][]float64) { ref.MeanVar(outs[0], outs[1], ins[0], a, b, c) },
	}
}

// batchNormChecks are a training forward and backward, with γ and β, of
// BatchNorm2d and BatchNorm1d (serial on CPU adapters, workgroups on GPUs),
// the synchronised passes (batchnorm_sync, here over a group of one), and
// the evaluation forward.
func batchNormChecks() []Check {
	train := func(n, c, hw int, sync bool) Check {
		// bn holds the layer of the current run; γ, β and their gradients
		// point at the checker's tensors while it runs.
		var bn *layers.BatchNorm
		var cache, scratch *gpu.Tensor
		use := func(gamma, beta, dgamma, dbeta *gpu.Tensor) {
			bn.Gamma.Value, bn.Beta.Value = gamma, beta
			if dgamma != nil {
				bn.Gamma.Grad, bn.Beta.Grad = dgamma, dbeta
			}
		}
		refBN := func(ins [][]float64) (y, mean, invstd []float64) {
			y, mean, invstd = make([]float64, len(ins[0])), make([]float64, c), make([]float64, c)
			ref.BatchNorm(y, mean, invstd, ins[0], ins[1], ins[2], n, c, hw, 1e-5)
			return y, mean, invstd
		}
		l := kcheck.Layer{
			Inputs: [][]int{{n, c, hw}, {c}, {c}}, Output: []int{n, c, hw}, Params: []bool{false, true, true},
			Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
				use(ins[1], ins[2], nil, nil)
				return bn.Forward(r, out, cache, ins[0], n, hw, true)
			},
			Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, ins []*gpu.Tensor) error {
				use(ins[1], ins[2], grads[1], grads[2])
				if err := bn.Forward(r, scratch, cache, ins[0], n, hw, true); err != nil {
					return err
				}
				return bn.Backward(r, grads[0], dout, ins[0], cache, n, hw)
			},
			RefForward: func(ins [][]float64) []float64 {
				y, _, _ := refBN(ins)
				return y
			},
			RefBackward: func(ins [][]float64, dout []float64) [][]float64 {
				_, mean, invstd := refBN(ins)
				dx, dgamma, dbeta := make([]float64, len(ins[0])), make([]float64, c), make([]float64, c)
				ref.BatchNormBackward(dx, dgamma, dbeta, dout, ins[0], mean, invstd, ins[1], n, c, hw)
				return [][]float64{dx, dgamma, dbeta}
			},
		}
		name := fmt.Sprintf("batchnorm train+backward %dx%dx%d", n, c, hw)
		if sync {
			name = fmt.Sprintf("batchnorm synchronised (one rank) train+backward %dx%dx%d", n, c, hw)
		}
		return Check{name, func(d *gpu.Device, rng *rand.Rand) (err error) {
			if bn, err = layers.NewBatchNorm(d, "bn", c, true); err != nil {
				return err
			}
			if sync {
				bn.Sync = dist.Single{}
			}
			own := [4]*gpu.Tensor{bn.Gamma.Value, bn.Beta.Value, bn.Gamma.Grad, bn.Beta.Grad}
			defer func() {
				use(own[0], own[1], own[2], own[3])
				bn.Release()
			}()
			if cache, err = bn.NewCache(); err != nil {
				return err
			}
			defer cache.Release()
			if scratch, err = d.NewTensor(n, c, hw); err != nil {
				return err
			}
			defer scratch.Release()
			return kcheck.RunLayer(d, rng, l)
		}}
	}
	const n, c, hw = 5, 17, 49
	eval := Check{"batchnorm eval 5x17x49", func(d *gpu.Device, rng *rand.Rand) error {
		bn, err := layers.NewBatchNorm(d, "bn", c, false)
		if err != nil {
			return err
		}
		own := [2]*gpu.Tensor{bn.RunningMean, bn.RunningVar}
		defer func() {
			bn.RunningMean, bn.RunningVar = own[0], own[1]
			bn.Release()
		}()
		return kcheck.Run(d, rng, kcheck.Op{
			Inputs: [][]int{{n, c, hw}, {c}, {c}}, Outputs: [][]int{{n, c, hw}}, Tol: kcheck.Elementwise,
			Draw: func(r *rand.Rand, i, m int) []float64 {
				v := kcheck.Normal(r, m)
				if i == 2 { // running variances in [0.5, 2]
					for j := range v {
						v[j] = 0.5 + 1.5*r.Float64()
					}
				}
				return v
			},
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				bn.RunningMean, bn.RunningVar = i[1], i[2]
				return bn.Forward(r, o[0], nil, i[0], n, hw, false)
			},
			Ref: func(o, i [][]float64) { ref.BatchNormEval(o[0], i[0], i[1], i[2], nil, nil, n, c, hw, 1e-5) },
		})
	}}
	return []Check{train(n, c, hw, false), train(65, 17, 1, false), train(3, 17, 9, true), eval}
}

// lossChecks run the Barlow Twins loss's forward and backward on both
// paths, and the statistics that the fused path computes by tiles of C
// (btloss_tile) where D > N; and the all-reduce of C over a group of one
// rank, whose passes (synchronised normalisation, btloss_norm's sums of a
// given Ẑ) are those of every rank of several.
func lossChecks() []Check {
	const n, dim = 17, 65
	const lambda, scale = 0.0051, 1
	var cs []Check
	for _, path := range []string{string(loss.Materialised), string(loss.Fused), "all-reduce-C"} {
		cs = append(cs, Check{fmt.Sprintf("barlow twins loss %s %dx%d", path, n, dim), func(d *gpu.Device, rng *rand.Rand) error {
			o := loss.DefaultOptions()
			o.Lambda, o.Scale, o.Path = lambda, scale, loss.Path(path)
			var l *loss.BarlowTwins
			var err error
			if path == "all-reduce-C" {
				o.Path = loss.Materialised
				l, err = loss.NewSharded(d, dist.Single{}, n, dim, o)
			} else {
				l, err = loss.NewBarlowTwins(d, n, dim, o)
			}
			if err != nil {
				return err
			}
			defer l.Release()
			var want ref.BTTerms
			if err := kcheck.Run(d, rng, kcheck.LossOp(l, n, dim, kcheck.BTLossRef(n, dim, lambda, scale, &want))); err != nil {
				return err
			}
			s, err := l.Stats()
			if err != nil {
				return err
			}
			got := []float64{float64(s.OnDiag), float64(s.OffDiag), float64(s.MeanDiag), float64(s.MeanAbsOff)}
			if err := ref.Compare(got, []float64{want.OnDiag, want.OffDiag, want.MeanDiag, want.MeanAbsOff}, kcheck.Reduction); err != nil {
				return fmt.Errorf("statistics (on-diagonal, off-diagonal, mean diagonal, mean |off-diagonal|) %v: %w", got, err)
			}
			return nil
		}})
	}
	return cs
}

// optimChecks take one step of each optimiser on a weight and a vector
// from a random state and compare the parameters, their change (small
// beside them, so an unwritten element shows) and the state.
func optimChecks() []Check {
	shapes := [][]int{{17, 13}, {65}}
	var cs []Check
	for _, kind := range optim.Kinds() {
		cs = append(cs, Check{"optimiser step " + kind.String() + " 17x13 and 65", func(d *gpu.Device, rng *rand.Rand) error {
			cfg := optim.DefaultConfig()
			cfg.LARS = optim.LARSConfig{WeightDecay: 0.05, Momentum: 0.9, Eta: 0.13}
			cfg.SGD = optim.SGDConfig{WeightDecay: 0.1, Momentum: 0.9, ExcludeVectors: true}
			cfg.AdamW = optim.AdamWConfig{WeightDecay: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
			lrW, lrV := map[optim.Kind]float64{optim.LARS: 1.1, optim.SGD: 0.1, optim.AdamW: 0.01}[kind], 0.05
			var params []*layers.Param
			defer func() {
				for _, p := range params {
					p.Release()
				}
			}()
			var p0, p1, grads [][]float64
			for i, s := range shapes {
				v := kcheck.To64(kcheck.To32(kcheck.Normal(rng, kcheck.Numel(s))))
				g := kcheck.To64(kcheck.To32(kcheck.Normal(rng, len(v))))
				val, err := d.FromSlice(kcheck.To32(v), s...)
				if err != nil {
					return err
				}
				grad, err := d.FromSlice(kcheck.To32(g), s...)
				if err != nil {
					val.Release()
					return err
				}
				params = append(params, &layers.Param{Name: fmt.Sprint("p", i), Value: val, Grad: grad})
				p0, grads = append(p0, v), append(grads, g)
				p1 = append(p1, append([]float64(nil), v...))
			}
			o, err := optim.New(kind, d, params, cfg)
			if err != nil {
				return err
			}
			defer o.Release()
			if err := d.Run(func(r *gpu.Recorder) error { return o.Step(r, float32(lrW), float32(lrV)) }); err != nil {
				return err
			}
			st, err := o.State()
			if err != nil {
				return err
			}
			var got, want, dgot, dwant []float64
			for i, p := range params {
				vec := p.IsVector()
				lr := float64(float32(lrW))
				if vec {
					lr = float64(float32(lrV))
				}
				n := len(p1[i])
				var slots []string
				switch kind {
				case "lars":
					m := make([]float64, n)
					ref.LARS(p1[i], m, grads[i], lr, cfg.LARS.WeightDecay, cfg.LARS.Momentum, cfg.LARS.Eta, vec)
					want, slots = append(want, m...), []string{"momentum"}
				case "sgd":
					m, wd := make([]float64, n), cfg.SGD.WeightDecay
					if vec {
						wd = 0
					}
					ref.SGD(p1[i], m, grads[i], lr, wd, cfg.SGD.Momentum)
					want, slots = append(want, m...), []string{"momentum"}
				case "adamw":
					m, v := make([]float64, n), make([]float64, n)
					c := cfg.AdamW
					ref.AdamW(p1[i], m, v, grads[i], lr, c.WeightDecay, c.Beta1, c.Beta2, c.Eps, 1)
					want, slots = append(append(want, m...), v...), []string{"exp_avg", "exp_avg_sq"}
				}
				for _, s := range slots {
					t, ok := st.Tensors[p.Name+"/"+s]
					if !ok {
						return fmt.Errorf("state lacks %s/%s", p.Name, s)
					}
					got = append(got, kcheck.To64(t)...)
				}
				v, err := p.Value.Download()
				if err != nil {
					return err
				}
				for j, x := range v {
					dgot, dwant = append(dgot, float64(x)-p0[i][j]), append(dwant, p1[i][j]-p0[i][j])
				}
			}
			return errors.Join(
				wrap("state", ref.Compare(got, want, kcheck.Reduction)),
				wrap("change of the parameters", ref.Compare(dgot, dwant, kcheck.Reduction)))
		}})
	}
	return cs
}

func wrap(what string, err error) error {
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

func poolChecks() []Check {
	return []Check{
		layer("max pool 3x3 stride 2, 2x3x17x13", MaxPoolLayer(2, 3, 17, 13, 3, 2, 1, false)),
		layer("global average pool 3x17x49", GlobalAvgPoolLayer(3, 17, 49, false)),
	}
}

// MaxPoolLayer is the check of layers.MaxPool2D with a k×k window, stride
// s and padding pad on [n, c, h, w], with the activations stored as f16
// where half (then held to kcheck.HalfStorage): the suite's and layers'
// tests' alike. Its inputs are a shuffled ramp (Distinct), so that finite
// differences never change which element wins a window.
func MaxPoolLayer(n, c, h, w, k, s, pad int, half bool) kcheck.Layer {
	oh, ow := ref.PoolOut(h, k, s, pad), ref.PoolOut(w, k, s, pad)
	refMax := func(x []float64) ([]float64, []int) {
		y, arg := make([]float64, n*c*oh*ow), make([]int, n*c*oh*ow)
		ref.MaxPool2D(y, arg, x, n*c, h, w, k, s, pad)
		return y, arg
	}
	tol := kcheck.Elementwise
	if half {
		tol = kcheck.HalfStorage
	}
	// forward records the pooling of in into out, and its argmax into a
	// temporary that goes back to the pool once recorded: work recorded
	// later that reuses its memory runs after.
	forward := func(r *gpu.Recorder, out, in *gpu.Tensor, then func(m *layers.MaxPool2D, arg *gpu.Tensor) error) error {
		m, err := layers.NewMaxPool2D(r.Device(), k, s, pad)
		if err != nil {
			return err
		}
		arg, err := r.Device().NewTensor(n, c, oh, ow)
		if err != nil {
			return err
		}
		defer arg.Release()
		if err := m.Forward(r, out, arg, in, n, c, h, w); err != nil {
			return err
		}
		return then(m, arg)
	}
	return kcheck.Layer{
		Inputs: [][]int{{n, c, h, w}}, Output: []int{n, c, oh, ow}, Draw: Distinct, Tol: tol, Half: half,
		Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
			return forward(r, out, ins[0], func(*layers.MaxPool2D, *gpu.Tensor) error { return nil })
		},
		Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, ins []*gpu.Tensor) error {
			y, err := r.Device().NewTensorOf(ins[0].DType, n, c, oh, ow)
			if err != nil {
				return err
			}
			defer y.Release()
			return forward(r, y, ins[0], func(m *layers.MaxPool2D, arg *gpu.Tensor) error {
				return m.Backward(r, grads[0], dout, arg, n, c, h, w)
			})
		},
		RefForward: func(ins [][]float64) []float64 {
			y, _ := refMax(ins[0])
			return y
		},
		RefBackward: func(ins [][]float64, dout []float64) [][]float64 {
			_, a := refMax(ins[0])
			dx := make([]float64, len(ins[0]))
			ref.MaxPool2DBackward(dx, dout, a, n*c, h, w, oh, ow)
			return [][]float64{dx}
		},
	}
}

// Distinct draws a shuffled ramp: no two values closer than 2/n, so that
// finite differences of 10⁻⁶ never change which element wins a window.
func Distinct(r *rand.Rand, _, n int) []float64 {
	v := make([]float64, n)
	for i, j := range r.Perm(n) {
		v[i] = 4 * (float64(j)/float64(n) - 0.5)
	}
	return v
}

// GlobalAvgPoolLayer is the check of layers.GlobalAvgPool on [n, c, hw],
// with the activations stored as f16 where half (then held to
// kcheck.HalfStorage): the suite's and layers' tests' alike.
func GlobalAvgPoolLayer(n, c, hw int, half bool) kcheck.Layer {
	tol := 0.0
	if half {
		tol = kcheck.HalfStorage
	}
	return kcheck.Layer{
		Inputs: [][]int{{n, c, hw}}, Output: []int{n, c}, Half: half, Tol: tol,
		Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
			return layers.NewGlobalAvgPool(r.Device()).Forward(r, out, ins[0], n, c, hw)
		},
		Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, _ []*gpu.Tensor) error {
			return layers.NewGlobalAvgPool(r.Device()).Backward(r, grads[0], dout, n, c, hw)
		},
		RefForward: func(ins [][]float64) []float64 {
			y := make([]float64, n*c)
			ref.GlobalAvgPool(y, ins[0], n*c, hw)
			return y
		},
		RefBackward: func(_ [][]float64, dout []float64) [][]float64 {
			dx := make([]float64, n*c*hw)
			ref.GlobalAvgPoolBackward(dx, dout, n*c, hw)
			return [][]float64{dx}
		},
	}
}

func rowNormChecks() []Check {
	const n, dim = 17, 65
	var cs []Check
	for _, mode := range []string{"l2", "std"} {
		cs = append(cs, layer(fmt.Sprintf("row norm %s %dx%d", mode, n, dim), RowNormLayer(mode, n, dim)))
	}
	return cs
}

// RowNormLayer is the check of layers.RowNorm in mode on [n, dim], the
// suite's and layers' tests' alike.
func RowNormLayer(mode string, n, dim int) kcheck.Layer {
	m := layers.RowNorm{Mode: mode, Eps: 1e-5}
	return kcheck.Layer{
		Inputs: [][]int{{n, dim}}, Output: []int{n, dim},
		// The temporaries go back to the pool once recorded: work
		// recorded later that reuses their memory runs after.
		Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
			inv, err := r.Device().NewTensor(n)
			if err != nil {
				return err
			}
			defer inv.Release()
			return m.Forward(r, out, inv, ins[0], n, dim)
		},
		Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, ins []*gpu.Tensor) error {
			y, err := r.Device().NewTensor(n, dim)
			if err != nil {
				return err
			}
			defer y.Release()
			inv, err := r.Device().NewTensor(n)
			if err != nil {
				return err
			}
			defer inv.Release()
			if err := m.Forward(r, y, inv, ins[0], n, dim); err != nil {
				return err
			}
			return m.Backward(r, grads[0], dout, y, inv, n, dim)
		},
		RefForward: func(ins [][]float64) []float64 {
			y, _ := ref.RowNorm(ins[0], n, dim, mode, 1e-5)
			return y
		},
		RefBackward: func(ins [][]float64, dout []float64) [][]float64 {
			y, inv := ref.RowNorm(ins[0], n, dim, mode, 1e-5)
			return [][]float64{ref.RowNormBackward(dout, y, inv, n, dim, mode)}
		},
	}
}

func xentChecks() []Check {
	var cs []Check
	for _, c := range CrossEntropyOps(65, 10) {
		cs = append(cs, op(c.Name, c.Op))
	}
	return cs
}

// CrossEntropyOps are the checks of the cross-entropy's forward and
// backward over n rows of k logits, far apart (where a naive softmax
// overflows sooner), against random labels: the suite's and layers'
// tests' alike.
func CrossEntropyOps(n, k int) []NamedOp {
	draw := func(r *rand.Rand, i, m int) []float64 {
		if i == 1 { // labels
			v := make([]float64, m)
			for j := range v {
				v[j] = float64(r.IntN(k))
			}
			return v
		}
		v := kcheck.Normal(r, m)
		for j := range v {
			v[j] *= 5
		}
		return v
	}
	shape := fmt.Sprintf("%dx%d", n, k)
	return []NamedOp{
		{"cross-entropy forward " + shape, kcheck.Op{Inputs: [][]int{{n, k}, {n}}, Outputs: [][]int{{n}}, Draw: draw, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				return layers.CrossEntropyForward(r, o[0], i[0], i[1], n, k)
			},
			Ref: func(o, i [][]float64) { copy(o[0], ref.CrossEntropy(i[0], i[1], n, k)) }}},
		{"cross-entropy backward " + shape, kcheck.Op{Inputs: [][]int{{n, k}, {n}}, Outputs: [][]int{{n, k}}, Draw: draw, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				return layers.CrossEntropyBackward(r, o[0], i[0], i[1], n, k)
			},
			Ref: func(o, i [][]float64) {
				mean := make([]float64, n)
				for j := range mean {
					mean[j] = 1 / float64(n)
				}
				copy(o[0], ref.CrossEntropyBackward(i[0], i[1], mean, n, k))
			}}},
	}
}

// augmentChecks render a view of random 8-bit images of odd sizes with the
// crop, flip, jitter, grayscale and blur on, against the CPU path
// (pipeline.Augmenter) with the same draws. Solarization is left out: a
// value within rounding of its threshold may land on either side, which a
// relative error over the whole view would not tell from a fault.
func augmentChecks() []Check {
	const size, c = 17, 3
	return []Check{{"augment view 3x17x17 from 17x9, 65x33, 3x5", func(d *gpu.Device, rng *rand.Rand) error {
		v := pipeline.ViewConfig{Size: size, Crop: pipeline.RandomResizedCrop, Scale: [2]float64{0.08, 1},
			Ratio: [2]float64{3.0 / 4, 4.0 / 3}, Filter: pipeline.Bicubic, FlipP: 0.5, SolarizeThreshold: 128.0 / 255,
			BlurKernelFraction: 0.1, Sigma: [2]float64{0.1, 2}, JitterP: 1, Brightness: 0.4, Contrast: 0.4, Saturation: 0.2,
			Hue: 0.1, GrayP: 0.5, BlurP: 1, Mean: []float32{0.4, 0.45, 0.5}, Std: []float32{0.25, 0.25, 0.25}}
		var imgs []pipeline.Image8
		for _, hw := range [][2]int{{17, 9}, {65, 33}, {3, 5}} {
			imgs = append(imgs, RandomImage8(rng, c, hw[0], hw[1]))
		}
		got, want, err := AugmentViews(d, rng, v, imgs)
		if err != nil {
			return err
		}
		return ref.Compare(kcheck.To64(got), kcheck.To64(want), kcheck.Reduction)
	}}}
}

// RandomImage8 is an h×w image of c channels of random bytes.
func RandomImage8(rng *rand.Rand, c, h, w int) pipeline.Image8 {
	m := pipeline.Image8{}
	m.Resize(c, h, w)
	for i := range m.Pix {
		m.Pix[i] = uint8(rng.IntN(256))
	}
	return m
}

// AugmentViews renders view v of every image on d (augment.NewEval), into
// an output filled with NaN first so that an unwritten value shows, and on
// the CPU (pipeline.Augmenter) with the same draws from rng: the suite's
// and augment's tests' alike.
func AugmentViews(d *gpu.Device, rng *rand.Rand, v pipeline.ViewConfig, imgs []pipeline.Image8) (got, want []float32, err error) {
	cpu, err := pipeline.NewAugmenter(v)
	if err != nil {
		return nil, nil, err
	}
	b := &pipeline.Batch{N: len(imgs), Images: imgs, Params: [][]pipeline.Params{make([]pipeline.Params, len(imgs))}}
	for k := range imgs {
		b.Params[0][k] = cpu.Draw(rng, imgs[k].H, imgs[k].W)
	}
	c, s := v.Channels(), v.Size
	sz := c * s * s
	nan := make([]float32, len(imgs)*sz)
	for i := range nan {
		nan[i] = float32(math.NaN())
	}
	out, err := d.FromSlice(nan, len(imgs), c, s, s)
	if err != nil {
		return nil, nil, err
	}
	defer out.Release()
	a, err := augment.NewEval(d, v)
	if err != nil {
		return nil, nil, err
	}
	defer a.Close()
	if err := d.Run(func(r *gpu.Recorder) error { return a.Record(r, b, out) }); err != nil {
		return nil, nil, err
	}
	if got, err = out.Download(); err != nil {
		return nil, nil, err
	}
	want = make([]float32, len(imgs)*sz)
	for k := range imgs {
		var src pipeline.Image
		imgs[k].ToImage(&src, imgs[k].C)
		cpu.Apply(want[k*sz:(k+1)*sz], &src, &b.Params[0][k])
	}
	return got, want, nil
}

// fmaChecks run the throughput probe of `bt bench -suites fma` a few loop
// trips, against its chains of multiply-adds in float64.
func fmaChecks() []Check {
	const wg, chains, unroll, iters, groups = 64, 3, 8, 5, 3
	return []Check{{"fma probe, 3 chains", func(d *gpu.Device, rng *rand.Rand) error {
		k, err := d.Kernel("fma", shaders.FMA{Chains: chains, Unroll: unroll, Threads: shaders.Threads{WG: wg}})
		if err != nil {
			return err
		}
		a, b := float32(0.9+0.1*rng.Float64()), float32(rng.NormFloat64())
		nan := make([]float32, wg*groups)
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		y, err := d.FromSlice(nan, len(nan))
		if err != nil {
			return err
		}
		defer y.Release()
		if err := d.Run(func(r *gpu.Recorder) error {
			return r.Dispatch(k, [3]int{groups, 1, 1}, gpu.Params{}.U(iters).F(a).F(b).U(0), y)
		}); err != nil {
			return err
		}
		got, err := y.Download()
		if err != nil {
			return err
		}
		want := make([]float64, len(got))
		for i := range want {
			for c := range chains {
				for _, x := range []float64{float64(i), float64(c), 1, 2} {
					for range unroll * iters {
						x = x*float64(a) + float64(b)
					}
					want[i] += x
				}
			}
		}
		return ref.Compare(kcheck.To64(got), want, kcheck.Reduction)
	}}}
}

// subgroupChecks run the subgroup-size probe where the device has
// subgroups: every invocation must report a power of two the adapter could
// run with (1 to 128 lanes). The reductions' subgroup paths are checked by
// the reduce, loss, optimiser and BatchNorm checks above.
func subgroupChecks() []Check {
	return []Check{{"subgroup size probe", func(d *gpu.Device, _ *rand.Rand) error {
		if !d.Subgroups {
			return nil
		}
		lo, hi, err := d.SubgroupSize()
		if err != nil {
			return err
		}
		for _, v := range []int{lo, hi} {
			if v < 1 || v > 128 || v&(v-1) != 0 {
				return fmt.Errorf("subgroup sizes %d to %d: want powers of two from 1 to 128", lo, hi)
			}
		}
		return nil
	}}}
}
