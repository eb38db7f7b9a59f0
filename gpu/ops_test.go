package gpu_test

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
	"github.com/bt-org/bt/internal/selfcheck"
)

// sizes are element counts that are not multiples of any workgroup or tile,
// plus one that needs more than one workgroup row of 65,535 × 256 when the
// 1-D grid is split (checked separately in TestGridSplit).
var sizes = []int{1, 3, 17, 65, 129, 1000, 4099}

func TestElementwise(t *testing.T) {
	d := gputest.Device(t)
	// Each op in f32, with every tensor in f16 (mixed precision's
	// activations), and with an f16 output from f32 and f16 inputs.
	f16, f32 := gpu.F16, gpu.F32
	for _, ty := range []struct {
		name    string
		out, in []gpu.DType
	}{{"f32", nil, nil}, {"f16", []gpu.DType{f16}, []gpu.DType{f16, f16}}, {"mixed", []gpu.DType{f16}, []gpu.DType{f32, f16}}} {
		for _, op := range selfcheck.ElementwiseOps() {
			sizes := sizes
			if ty.name != "f32" {
				sizes = []int{1, 17, 1000}
			}
			for _, n := range sizes {
				t.Run(fmt.Sprintf("%s/%s/%d", ty.name, op.Name, n), func(t *testing.T) {
					if ty.out != nil {
						gputest.NeedF16(t, d)
					}
					gputest.Check(t, d, op.Check(n, ty.out, ty.in))
				})
			}
		}
	}
}

func TestReduce(t *testing.T) {
	gputest.SubgroupModes(t, func(t *testing.T, d *gpu.Device) {
		shapes := [][3]int{{1, 1, 1}, {3, 17, 1}, {65, 129, 1}, {1, 3, 1000}, {1, 65, 17}, {4, 3, 49}, {17, 5, 9}, {2048, 33, 1}}
		// x in f32 and, for mixed precision's gradients, f16; the sums
		// and outputs are f32 either way.
		types := gputest.Precisions(t, d)
		for _, s := range shapes {
			a, b, c := s[0], s[1], s[2]
			for _, op := range []gpu.ReduceOp{gpu.Sum, gpu.SumSq, gpu.Mean} {
				for _, ty := range types {
					t.Run(fmt.Sprintf("%s/%v/%dx%dx%d", op, ty, a, b, c), func(t *testing.T) {
						gputest.Check(t, d, selfcheck.ReduceCheck(op, a, b, c, ty))
					})
				}
			}
			t.Run(fmt.Sprintf("meanvar/%dx%dx%d", a, b, c), func(t *testing.T) {
				gputest.Check(t, d, selfcheck.MeanVarCheck(a, b, c))
			})
		}
	})
}

func TestGemm(t *testing.T) {
	d := gputest.Device(t)
	shapes := [][4]int{ // batch, m, n, k
		{1, 1, 1, 1}, {1, 3, 17, 65}, {1, 65, 129, 17}, {1, 129, 65, 3}, {1, 64, 64, 64},
		{3, 17, 33, 9}, {1, 200, 1, 129}, {1, 1, 200, 129}, {2, 130, 131, 70},
	}
	tiles := []gpu.GemmTile{{}, {BM: 32, BN: 64, BK: 8, TM: 4, TN: 8}, {BM: 128, BN: 128, BK: 16, TM: 8, TN: 8}}
	for _, s := range shapes {
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				for ti, tile := range tiles {
					batch, m, n, k := s[0], s[1], s[2], s[3]
					for _, beta := range []float32{0, 0.5} {
						name := fmt.Sprintf("%dx%dx%dx%d/tA=%v/tB=%v/tile%d/beta=%v", batch, m, n, k, ta, tb, ti, beta)
						t.Run(name, func(t *testing.T) {
							gputest.Check(t, d, selfcheck.GemmCheck(gpu.GemmOp{M: m, N: n, K: k, Batch: batch,
								TransA: ta, TransB: tb, Alpha: 1.5, Beta: beta, Tile: tile}, gpu.F32, gpu.F32, gpu.F32))
						})
					}
				}
			}
		}
	}
}

// TestHarnessCatchesUnwritten shows that the NaN poisoning works: a kernel
// that leaves its output alone must fail the check, even with a reference
// that is all zeros.
func TestHarnessCatchesUnwritten(t *testing.T) {
	d := gputest.Device(t)
	err := kcheck.Run(d, gputest.Rand(t), kcheck.Op{
		Inputs: [][]int{{17}}, Outputs: [][]int{{17}}, Tol: 1,
		GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error { return nil },
		Ref: func(outs, ins [][]float64) {},
	})
	if err == nil || !strings.Contains(err.Error(), "unwritten") {
		t.Fatalf("an unwritten output passed the check: %v", err)
	}
}

func TestAddBias(t *testing.T) {
	d := gputest.Device(t)
	for _, s := range [][3]int{{1, 1, 1}, {3, 17, 1}, {2, 5, 49}, {129, 65, 1}, {4, 3, 17}} { // outer, channels, inner
		outer, ch, inner := s[0], s[1], s[2]
		t.Run(fmt.Sprintf("%dx%dx%d", outer, ch, inner), func(t *testing.T) {
			gputest.Check(t, d, selfcheck.AddBiasCheck(outer, ch, inner))
		})
	}
}

func TestAccumulateSum(t *testing.T) {
	gputest.SubgroupModes(t, func(t *testing.T, d *gpu.Device) {
		for _, s := range [][3]int{{1, 1, 1}, {65, 17, 1}, {3, 5, 49}} {
			a, b, c := s[0], s[1], s[2]
			t.Run(fmt.Sprintf("%dx%dx%d", a, b, c), func(t *testing.T) {
				gputest.Check(t, d, kcheck.Op{
					Inputs: [][]int{{a, b, c}}, Outputs: [][]int{{b}}, Accumulate: []bool{true}, Tol: kcheck.Reduction,
					GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
						return gpu.AccumulateSum(r, outs[0], ins[0], a, b, c)
					},
					Ref: func(outs, ins [][]float64) {
						sum := make([]float64, b)
						ref.Reduce3(sum, ins[0], a, b, c, func(v float64) float64 { return v })
						for j := range sum {
							outs[0][j] += sum[j]
						}
					},
				})
			})
		}
	})
}

// TestReLUPassesNaN: ReLU and the fused add-ReLU keep NaN, as PyTorch's
// relu does, and still cut negative numbers and -Inf to 0.
func TestReLUPassesNaN(t *testing.T) {
	d := gputest.Device(t)
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	in := []float32{nan, -1, 2, inf, -inf}
	zero := make([]float32, len(in))
	x, err := d.FromSlice(in, len(in))
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release()
	z, err := d.FromSlice(zero, len(in))
	if err != nil {
		t.Fatal(err)
	}
	defer z.Release()
	for name, op := range map[string]func(r *gpu.Recorder, y *gpu.Tensor) error{
		"ReLU":    func(r *gpu.Recorder, y *gpu.Tensor) error { return gpu.ReLU(r, y, x) },
		"AddReLU": func(r *gpu.Recorder, y *gpu.Tensor) error { return gpu.AddReLU(r, y, x, z) },
	} {
		y, err := d.NewTensor(len(in))
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Run(func(r *gpu.Recorder) error { return op(r, y) }); err != nil {
			t.Fatal(err)
		}
		got, err := y.Download()
		y.Release()
		if err != nil {
			t.Fatal(err)
		}
		if !math.IsNaN(float64(got[0])) || got[1] != 0 || got[2] != 2 || got[3] != inf || got[4] != 0 {
			t.Errorf("%s(%v) = %v, want [NaN 0 2 +Inf 0]", name, in, got)
		}
	}
}

// BenchmarkReduce times a column sum ([rows, cols, 1], 32 columns per
// workgroup) and a per-channel sum ([N, C, HW], one channel per workgroup)
// with the sums in subgroups and in workgroup memory.
func BenchmarkReduce(b *testing.B) {
	for _, s := range [][3]int{{256, 512, 1}, {256, 64, 49}, {256, 16, 784}} {
		b.Run(fmt.Sprintf("%dx%dx%d", s[0], s[1], s[2]), func(b *testing.B) {
			gputest.SubgroupModes(b, func(b *testing.B, d *gpu.Device) {
				x, err := d.FromSlice(kcheck.To32(kcheck.Normal(rand.New(rand.NewPCG(1, 2)), s[0]*s[1]*s[2])), s[0], s[1], s[2])
				if err != nil {
					b.Fatal(err)
				}
				defer x.Release()
				out, err := d.NewTensor(s[1])
				if err != nil {
					b.Fatal(err)
				}
				defer out.Release()
				record := func(r *gpu.Recorder) error { return gpu.Reduce(r, out, x, s[0], s[1], s[2], gpu.Sum) }
				for b.Loop() {
					if err := d.Run(record); err != nil {
						b.Fatal(err)
					}
					d.Sync()
				}
				b.ReportMetric(gputest.KernelMillis(b, d, record, "reduce{"), "kernel-ms")
			})
		})
	}
}

// TestGemmHalf checks GEMM with operands stored as f16 (mixed precision:
// the kernel reads f16, multiplies and sums in f32), in the combinations
// training uses: a forward product into f16 activations, a weight gradient
// into f32, and f32 master weights against f16 activations. The reference
// sees the f16 inputs exactly; an f16 output is held to HalfStorage.
func TestGemmHalf(t *testing.T) {
	d := gputest.Device(t)
	gputest.NeedF16(t, d)
	shapes := [][4]int{{1, 1, 1, 1}, {1, 3, 17, 65}, {2, 65, 129, 17}} // batch, m, n, k
	// Each tile with its own transposition and accumulation: the staged
	// tile of GPUs, a small staged one, and the direct tile of CPUs.
	tiles := []struct {
		tile           gpu.GemmTile
		transA, transB bool
		beta           float32
	}{
		{gpu.GemmTile{}, false, true, 0},
		{gpu.GemmTile{BM: 32, BN: 64, BK: 8, TM: 4, TN: 8}, true, false, 0.5},
		{gpu.GemmTile{BM: 4, BN: 64, TM: 4, TN: 4, Direct: true}, false, false, 0},
	}
	f16, f32 := gpu.F16, gpu.F32
	for _, ty := range [][3]gpu.DType{{f16, f16, f16}, {f32, f16, f16}, {f16, f32, f16}, {f16, f16, f32}} { // C, A, B
		for _, s := range shapes {
			for ti, tc := range tiles {
				batch, m, n, k := s[0], s[1], s[2], s[3]
				t.Run(fmt.Sprintf("C%v=A%v·B%v/%dx%dx%dx%d/tile%d", ty[0], ty[1], ty[2], batch, m, n, k, ti), func(t *testing.T) {
					gputest.Check(t, d, selfcheck.GemmCheck(gpu.GemmOp{M: m, N: n, K: k, Batch: batch,
						TransA: tc.transA, TransB: tc.transB, Alpha: 1.5, Beta: tc.beta, Tile: tc.tile}, ty[0], ty[1], ty[2]))
				})
			}
		}
	}
}
