package main

import (
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
	"github.com/bt-org/bt/layers"
)

func runDevices(args []string) error {
	fs, adapter := newFlags("devices", "Lists the WebGPU adapters, describes the one bt would use, and checks its kernels against float64 references.")
	check := fs.Bool("check", true, "run the kernel self-check on the chosen adapter")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the self-check's random inputs (default: the clock; printed, to repeat a failure)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	infos, err := gpu.Adapters()
	if err != nil {
		return err
	}
	fmt.Println("adapters:")
	for _, a := range infos {
		fmt.Println("  " + a.String())
	}
	d, err := gpu.Open(gpu.Options{Adapter: *adapter})
	if err != nil {
		return err
	}
	defer d.Release()
	fmt.Printf("\nchosen:\n%s", d.Report())
	if dist.MPI != "" {
		fmt.Printf("MPI: %s: runs over several processes under mpirun or srun (README: Several GPUs or machines)\n", dist.MPI)
	} else {
		fmt.Println("MPI: none in this binary; scripts/build-mpi.sh builds one that runs over several processes")
	}
	if !*check {
		return nil
	}
	fmt.Printf("\nself-check of the core kernels (random inputs with -seed %d, NaN-poisoned outputs, relative error against float64;\nthe loss, optimiser, pooling and row-norm kernels are checked by go test):\n", *seed)
	failed := 0
	rng := rand.New(rand.NewPCG(*seed, 1))
	for _, c := range selfChecks() {
		start := time.Now()
		err := kcheck.Run(d, rng, c.op)
		status := "ok"
		if err != nil {
			status = "FAIL: " + err.Error()
			failed++
		}
		fmt.Printf("  %-42s %6s  %s\n", c.name, time.Since(start).Round(time.Millisecond), status)
	}
	if failed > 0 {
		return fmt.Errorf("%d kernel check(s) failed on %s", failed, d.Info.Name)
	}
	fmt.Println("all kernels agree with their references")
	return nil
}

type selfCheck struct {
	name string
	op   kcheck.Op
}

// selfChecks is a quick pass over the core kernel families on shapes that are
// not multiples of any tile; the tests cover many more shapes.
func selfChecks() []selfCheck {
	var cs []selfCheck
	conv := gpu.ConvShape{N: 2, Cin: 3, H: 17, W: 13, Cout: 5, KH: 3, KW: 3, Stride: 2, Pad: 1}
	refConv := ref.ConvShape{N: 2, Cin: 3, H: 17, W: 13, Cout: 5, KH: 3, KW: 3, Stride: 2, Pad: 1}
	const m, n, k = 65, 129, 17
	for _, ta := range []bool{false, true} {
		for _, tb := range []bool{false, true} {
			cs = append(cs, selfCheck{fmt.Sprintf("gemm %dx%dx%d transA=%v transB=%v", m, n, k, ta, tb), kcheck.Op{
				Inputs: [][]int{{m, k}, {k, n}}, Outputs: [][]int{{m, n}}, Tol: kcheck.Reduction,
				GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
					return gpu.Gemm(r, o[0], i[0], i[1], gpu.GemmOp{M: m, N: n, K: k, TransA: ta, TransB: tb, Alpha: 1})
				},
				Ref: func(o, i [][]float64) { ref.Gemm(o[0], i[0], i[1], 1, m, n, k, ta, tb, 1, 0) },
			}})
		}
	}
	cs = append(cs,
		selfCheck{"add 4099", kcheck.Op{
			Inputs: [][]int{{4099}, {4099}}, Outputs: [][]int{{4099}}, Tol: kcheck.Elementwise,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.Add(r, o[0], i[0], i[1]) },
			Ref: func(o, i [][]float64) {
				for j := range o[0] {
					o[0][j] = i[0][j] + i[1][j]
				}
			},
		}},
		selfCheck{"relu backward 4099", kcheck.Op{
			Inputs: [][]int{{4099}, {4099}}, Outputs: [][]int{{4099}}, Tol: kcheck.Elementwise,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ReLUBackward(r, o[0], i[0], i[1]) },
			Ref: func(o, i [][]float64) {
				for j := range o[0] {
					if i[1][j] > 0 {
						o[0][j] = i[0][j]
					}
				}
			},
		}},
		selfCheck{"mean/var 17x65x9", kcheck.Op{
			Inputs: [][]int{{17, 65, 9}}, Outputs: [][]int{{65}, {65}}, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.MeanVar(r, o[0], o[1], i[0], 17, 65, 9) },
			Ref: func(o, i [][]float64) { ref.MeanVar(o[0], o[1], i[0], 17, 65, 9) },
		}},
		selfCheck{"conv 3x3 stride 2, 2x3x17x13 -> 5", kcheck.Op{
			Inputs: [][]int{{2, 3, 17, 13}, {5, 3, 3, 3}}, Outputs: [][]int{{2, 5, 9, 7}}, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.ConvForward(r, o[0], i[0], i[1], conv) },
			Ref: func(o, i [][]float64) { copy(o[0], ref.ConvForward(refConv, i[0], i[1], nil)) },
		}},
		selfCheck{"conv weight gradient", kcheck.Op{
			Inputs: [][]int{{2, 5, 9, 7}, {2, 3, 17, 13}}, Outputs: [][]int{{5, 3, 3, 3}}, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				if err := gpu.Fill(r, o[0], 0); err != nil {
					return err
				}
				return gpu.ConvBackwardWeight(r, o[0], i[0], i[1], conv)
			},
			Ref: func(o, i [][]float64) {
				_, dw, _ := ref.ConvBackward(refConv, i[1], make([]float64, 5*3*3*3), nil, i[0])
				copy(o[0], dw)
			},
		}},
		selfCheck{"batchnorm training 17x3x49", kcheck.Op{
			Inputs: [][]int{{17, 3, 49}}, Outputs: [][]int{{17, 3, 49}}, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				bn, err := layers.NewBatchNorm(r.Device(), "bn", 3, false)
				if err != nil {
					return err
				}
				cache, err := bn.NewCache()
				if err != nil {
					return err
				}
				// Released once recorded: later work that reuses the memory runs after.
				defer bn.Release()
				defer cache.Release()
				return bn.Forward(r, o[0], cache, i[0], 17, 49, true)
			},
			Ref: func(o, i [][]float64) {
				ref.BatchNorm(o[0], make([]float64, 3), make([]float64, 3), i[0], nil, nil, 17, 3, 49, 1e-5)
			},
		}},
		selfCheck{"cross-entropy gradient 65x10", kcheck.Op{
			Inputs: [][]int{{65, 10}, {65}}, Outputs: [][]int{{65, 10}}, Tol: kcheck.Reduction,
			Draw: func(rng *rand.Rand, i, n int) []float64 {
				if i == 1 {
					v := make([]float64, n)
					for j := range v {
						v[j] = float64(rng.IntN(10))
					}
					return v
				}
				return kcheck.Normal(rng, n)
			},
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error {
				return layers.CrossEntropyBackward(r, o[0], i[0], i[1], 65, 10)
			},
			Ref: func(o, i [][]float64) {
				mean := make([]float64, 65)
				for j := range mean {
					mean[j] = 1.0 / 65
				}
				copy(o[0], ref.CrossEntropyBackward(i[0], i[1], mean, 65, 10))
			},
		}},
		selfCheck{"column sum 129x65", kcheck.Op{
			Inputs: [][]int{{129, 65}}, Outputs: [][]int{{65}}, Tol: kcheck.Reduction,
			GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return gpu.Reduce(r, o[0], i[0], 129, 65, 1, gpu.Sum) },
			Ref: func(o, i [][]float64) { ref.Reduce3(o[0], i[0], 129, 65, 1, func(v float64) float64 { return v }) },
		}},
	)
	return cs
}
