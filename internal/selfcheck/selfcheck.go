// Package selfcheck is bt's kernel self-check: one named check per kernel
// path, together covering every shader file in shaders/, each comparing the
// device with a float64 reference through kcheck on fresh random inputs of
// shapes that are multiples of no tile or workgroup. `bt devices` runs it
// on the adapter it describes; this package's test runs it on the test
// adapter and fails if a shader file is dispatched by no check. The
// packages' own tests sweep many more shapes.
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
		return op(name, kcheck.Op{
			Inputs: [][]int{{batch, m, k}, {batch, k, n}}, Outputs: [][]int{{batch, m, n}}, Accumulate: []bool{beta != 0},
			Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				return gpu.Gemm(r, o[0], i[0], i[1], gpu.GemmOp{M: m, N: n, K: k, Batch: batch, TransA: ta, TransB: tb,
					Alpha: 1.5, Beta: beta, Tile: tile})
			},
			Ref: func(o, i [][]float64) { ref.Gemm(o[0], i[0], i[1], batch, m, n, k, ta, tb, 1.5, float64(beta)) },
		})
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

func elementwiseChecks() []Check {
	const n = 4099
	return []Check{
		op("add-relu 4099", kcheck.Op{Inputs: [][]int{{n}, {n}}, Outputs: [][]int{{n}}, Tol: kcheck.Elementwise,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.AddReLU(r, o[0], i[0], i[1]) },
			Ref: func(o, i [][]float64) {
				for j := range o[0] {
					o[0][j] = max(i[0][j]+i[1][j], 0)
				}
			}}),
		op("axpy 4099", kcheck.Op{Inputs: [][]int{{n}}, Outputs: [][]int{{n}}, Accumulate: []bool{true}, Tol: kcheck.Elementwise,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.Axpy(r, o[0], i[0], -0.75) },
			Ref: func(o, i [][]float64) {
				for j := range o[0] {
					o[0][j] += -0.75 * i[0][j]
				}
			}}),
		op("relu backward 4099", kcheck.Op{Inputs: [][]int{{n}, {n}}, Outputs: [][]int{{n}}, Tol: kcheck.Elementwise,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ReLUBackward(r, o[0], i[0], i[1]) },
			Ref: func(o, i [][]float64) {
				for j := range o[0] {
					if i[1][j] > 0 {
						o[0][j] = i[0][j]
					}
				}
			}}),
		op("channel bias 3x17x49", kcheck.Op{Inputs: [][]int{{17}}, Outputs: [][]int{{3, 17, 49}}, Accumulate: []bool{true},
			Tol: kcheck.Elementwise,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.AddBias(r, o[0], i[0], 49, 17) },
			Ref: func(o, i [][]float64) {
				for j := range o[0] {
					o[0][j] += i[0][(j/49)%17]
				}
			}}),
	}
}

func reduceChecks() []Check {
	return []Check{
		op("column sum 129x65", kcheck.Op{Inputs: [][]int{{129, 65}}, Outputs: [][]int{{65}}, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.Reduce(r, o[0], i[0], 129, 65, 1, gpu.Sum) },
			Ref: func(o, i [][]float64) { ref.Reduce3(o[0], i[0], 129, 65, 1, func(v float64) float64 { return v }) }}),
		op("row sum of squares 65x129", kcheck.Op{Inputs: [][]int{{65, 129}}, Outputs: [][]int{{65}}, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				return gpu.Reduce(r, o[0], i[0], 1, 65, 129, gpu.SumSq)
			},
			Ref: func(o, i [][]float64) { ref.Reduce3(o[0], i[0], 1, 65, 129, func(v float64) float64 { return v * v }) }}),
		op("mean/var 17x65x9", kcheck.Op{Inputs: [][]int{{17, 65, 9}}, Outputs: [][]int{{65}, {65}}, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.MeanVar(r, o[0], o[1], i[0], 17, 65, 9) },
			Ref: func(o, i [][]float64) { ref.MeanVar(o[0], o[1], i[0], 17, 65, 9) }}),
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
			var zb []float64
			if err := kcheck.Run(d, rng, kcheck.Op{
				Inputs: [][]int{{n, dim}, {n, dim}}, Outputs: [][]int{{1}, {n, dim}, {n, dim}}, Tol: kcheck.Reduction,
				Draw: func(r *rand.Rand, i, _ int) []float64 {
					if i == 1 {
						return zb
					}
					var za []float64
					za, zb = ref.BTViews(r, n, dim)
					return za
				},
				GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
					if err := l.Forward(r, outs[0], ins[0], ins[1]); err != nil {
						return err
					}
					return l.Backward(r, outs[1], outs[2])
				},
				Ref: func(outs, ins [][]float64) {
					want = ref.BTLoss(ins[0], ins[1], n, dim, lambda, scale)
					outs[0][0] = want.Loss
					ref.BTLossBackward(outs[1], outs[2], ins[0], ins[1], n, dim, lambda, scale)
				},
			}); err != nil {
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
	for _, kind := range optim.Names {
		cs = append(cs, Check{"optimiser step " + kind + " 17x13 and 65", func(d *gpu.Device, rng *rand.Rand) error {
			cfg := optim.DefaultConfig()
			cfg.LARS = optim.LARSConfig{WeightDecay: 0.05, Momentum: 0.9, Eta: 0.13}
			cfg.SGD = optim.SGDConfig{WeightDecay: 0.1, Momentum: 0.9, ExcludeVectors: true}
			cfg.AdamW = optim.AdamWConfig{WeightDecay: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
			lrW, lrV := map[string]float64{"lars": 1.1, "sgd": 0.1, "adamw": 0.01}[kind], 0.05
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
	const n, c, h, w, k, s, pad = 2, 3, 17, 13, 3, 2, 1
	oh, ow := ref.PoolOut(h, k, s, pad), ref.PoolOut(w, k, s, pad)
	refMax := func(x []float64) ([]float64, []int) {
		y, arg := make([]float64, n*c*oh*ow), make([]int, n*c*oh*ow)
		ref.MaxPool2D(y, arg, x, n*c, h, w, k, s, pad)
		return y, arg
	}
	// The argmax and a scratch output live for one run of the check.
	var arg, scratch *gpu.Tensor
	var m *layers.MaxPool2D
	maxPool := kcheck.Layer{
		Inputs: [][]int{{n, c, h, w}}, Output: []int{n, c, oh, ow}, Tol: kcheck.Elementwise,
		Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
			return m.Forward(r, out, arg, ins[0], n, c, h, w)
		},
		Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, ins []*gpu.Tensor) error {
			if err := m.Forward(r, scratch, arg, ins[0], n, c, h, w); err != nil {
				return err
			}
			return m.Backward(r, grads[0], dout, arg, n, c, h, w)
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
	const gn, gc, ghw = 3, 17, 49
	return []Check{
		{fmt.Sprintf("max pool %dx%d stride %d, %dx%dx%dx%d", k, k, s, n, c, h, w), func(d *gpu.Device, rng *rand.Rand) (err error) {
			if m, err = layers.NewMaxPool2D(d, k, s, pad); err != nil {
				return err
			}
			if arg, err = d.NewTensor(n, c, oh, ow); err != nil {
				return err
			}
			defer arg.Release()
			if scratch, err = d.NewTensor(n, c, oh, ow); err != nil {
				return err
			}
			defer scratch.Release()
			return kcheck.RunLayer(d, rng, maxPool)
		}},
		{"global average pool 3x17x49", func(d *gpu.Device, rng *rand.Rand) error {
			g := layers.NewGlobalAvgPool(d)
			return kcheck.RunLayer(d, rng, kcheck.Layer{
				Inputs: [][]int{{gn, gc, ghw}}, Output: []int{gn, gc},
				Forward: func(r *gpu.Recorder, out *gpu.Tensor, ins []*gpu.Tensor) error {
					return g.Forward(r, out, ins[0], gn, gc, ghw)
				},
				Backward: func(r *gpu.Recorder, grads []*gpu.Tensor, dout *gpu.Tensor, _ []*gpu.Tensor) error {
					return g.Backward(r, grads[0], dout, gn, gc, ghw)
				},
				RefForward: func(ins [][]float64) []float64 {
					y := make([]float64, gn*gc)
					ref.GlobalAvgPool(y, ins[0], gn*gc, ghw)
					return y
				},
				RefBackward: func(_ [][]float64, dout []float64) [][]float64 {
					dx := make([]float64, gn*gc*ghw)
					ref.GlobalAvgPoolBackward(dx, dout, gn*gc, ghw)
					return [][]float64{dx}
				},
			})
		}},
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
	const n, k = 65, 10
	draw := func(r *rand.Rand, i, m int) []float64 {
		v := kcheck.Normal(r, m)
		if i == 1 { // labels
			for j := range v {
				v[j] = float64(r.IntN(k))
			}
		}
		return v
	}
	return []Check{
		op("cross-entropy forward 65x10", kcheck.Op{Inputs: [][]int{{n, k}, {n}}, Outputs: [][]int{{n}}, Draw: draw, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				return layers.CrossEntropyForward(r, o[0], i[0], i[1], n, k)
			},
			Ref: func(o, i [][]float64) { copy(o[0], ref.CrossEntropy(i[0], i[1], n, k)) }}),
		op("cross-entropy backward 65x10", kcheck.Op{Inputs: [][]int{{n, k}, {n}}, Outputs: [][]int{{n, k}}, Draw: draw, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				return layers.CrossEntropyBackward(r, o[0], i[0], i[1], n, k)
			},
			Ref: func(o, i [][]float64) {
				mean := make([]float64, n)
				for j := range mean {
					mean[j] = 1.0 / n
				}
				copy(o[0], ref.CrossEntropyBackward(i[0], i[1], mean, n, k))
			}}),
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
		cpu, err := pipeline.NewAugmenter(v)
		if err != nil {
			return err
		}
		var imgs []pipeline.Image8
		for _, hw := range [][2]int{{17, 9}, {65, 33}, {3, 5}} {
			m := pipeline.Image8{}
			m.Resize(c, hw[0], hw[1])
			for i := range m.Pix {
				m.Pix[i] = uint8(rng.IntN(256))
			}
			imgs = append(imgs, m)
		}
		b := &pipeline.Batch{N: len(imgs), Images: imgs, Params: [][]pipeline.Params{make([]pipeline.Params, len(imgs))}}
		for k := range imgs {
			b.Params[0][k] = cpu.Draw(rng, imgs[k].H, imgs[k].W)
		}
		sz := c * size * size
		nan := make([]float32, len(imgs)*sz)
		for i := range nan {
			nan[i] = float32(math.NaN())
		}
		out, err := d.FromSlice(nan, len(imgs), c, size, size)
		if err != nil {
			return err
		}
		defer out.Release()
		a, err := augment.NewEval(d, v)
		if err != nil {
			return err
		}
		defer a.Close()
		if err := d.Run(func(r *gpu.Recorder) error { return a.Record(r, b, out) }); err != nil {
			return err
		}
		got, err := out.Download()
		if err != nil {
			return err
		}
		want := make([]float32, len(imgs)*sz)
		for k := range imgs {
			var src pipeline.Image
			imgs[k].ToImage(&src, c)
			cpu.Apply(want[k*sz:(k+1)*sz], &src, &b.Params[0][k])
		}
		return ref.Compare(kcheck.To64(got), kcheck.To64(want), kcheck.Reduction)
	}}}
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
