package layers

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
)

// poolShape is one MaxPool2D case: input [n, c, h, w], window k, stride s,
// padding pad.
type poolShape struct{ n, c, h, w, k, s, pad int }

func (p poolShape) String() string {
	return fmt.Sprintf("%dx%dx%dx%d/k%ds%dp%d", p.n, p.c, p.h, p.w, p.k, p.s, p.pad)
}

// Sizes are the shape's fields, for the external tests.
func (p poolShape) Sizes() (n, c, h, w, k, s, pad int) { return p.n, p.c, p.h, p.w, p.k, p.s, p.pad }

func (p poolShape) out() (int, int) {
	return ref.PoolOut(p.h, p.k, p.s, p.pad), ref.PoolOut(p.w, p.k, p.s, p.pad)
}

// poolShapes: the ImageNet stem's 3/2/1 on sizes down to a single pixel,
// odd and even, square and not, and other windows, strides and paddings,
// including overlapping windows (stride 1) where an element can win several.
var poolShapes = []poolShape{
	{1, 1, 1, 1, 3, 2, 1}, {2, 3, 3, 3, 3, 2, 1}, {1, 2, 7, 7, 3, 2, 1}, {2, 3, 8, 8, 3, 2, 1},
	{1, 2, 17, 17, 3, 2, 1}, {3, 1, 8, 17, 3, 2, 1}, {2, 1, 8, 17, 2, 2, 0}, {1, 3, 7, 8, 3, 1, 1},
	{1, 1, 17, 3, 5, 3, 2}, {3, 2, 9, 9, 3, 3, 0}, {1, 2, 1, 7, 3, 2, 1}, {65, 3, 8, 8, 3, 2, 1},
}

func refMaxPool(p poolShape, x []float64) ([]float64, []int) {
	oh, ow := p.out()
	y, arg := make([]float64, p.n*p.c*oh*ow), make([]int, p.n*p.c*oh*ow)
	ref.MaxPool2D(y, arg, x, p.n*p.c, p.h, p.w, p.k, p.s, p.pad)
	return y, arg
}

func newTestMaxPool(t *testing.T, d *gpu.Device, p poolShape) (*MaxPool2D, *gpu.Tensor, *gpu.Tensor) {
	t.Helper()
	m, err := NewMaxPool2D(d, p.k, p.s, p.pad)
	if err != nil {
		t.Fatal(err)
	}
	oh, ow := m.OutSize(p.h, p.w)
	if rh, rw := p.out(); oh != rh || ow != rw {
		t.Fatalf("OutSize(%d, %d) = %d×%d, want %d×%d", p.h, p.w, oh, ow, rh, rw)
	}
	arg := upload(t, d, make([]float64, p.n*p.c*oh*ow), p.n, p.c, oh, ow)
	scratch := upload(t, d, make([]float64, p.n*p.c*oh*ow), p.n, p.c, oh, ow)
	return m, arg, scratch
}

// PoolShapes exports poolShapes to the external tests (maxpool_test.go).
var PoolShapes = poolShapes

// TestMaxPool2DTies draws small integers, so that most windows hold their
// maximum more than once, and NaNs: the argmax and the gradient must follow
// PyTorch's rule (first maximum in scan order, a NaN always wins).
func TestMaxPool2DTies(t *testing.T) {
	d := gputest.Device(t)
	for _, p := range poolShapes {
		for _, nan := range []bool{false, true} {
			t.Run(fmt.Sprintf("%v/nan=%v", p, nan), func(t *testing.T) {
				m, arg, scratch := newTestMaxPool(t, d, p)
				oh, ow := p.out()
				in, out := []int{p.n, p.c, p.h, p.w}, []int{p.n, p.c, oh, ow}
				draw := func(r *rand.Rand, i, n int) []float64 {
					if i == 1 {
						return kcheck.Normal(r, n)
					}
					v := make([]float64, n)
					for j := range v {
						v[j] = float64(r.IntN(3))
						if nan && r.IntN(7) == 0 {
							v[j] = math.NaN()
						}
					}
					return v
				}
				gputest.Check(t, d, kcheck.Op{
					Inputs: [][]int{in}, Outputs: [][]int{out, out}, Draw: draw, Tol: 0,
					GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
						return m.Forward(r, outs[0], outs[1], ins[0], p.n, p.c, p.h, p.w)
					},
					Ref: func(outs, ins [][]float64) {
						y, a := refMaxPool(p, ins[0])
						copy(outs[0], y)
						for i, v := range a {
							outs[1][i] = float64(v)
						}
					},
				})
				gputest.Check(t, d, kcheck.Op{
					Inputs: [][]int{in, out}, Outputs: [][]int{in}, Draw: draw, Tol: kcheck.Elementwise,
					GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
						if err := m.Forward(r, scratch, arg, ins[0], p.n, p.c, p.h, p.w); err != nil {
							return err
						}
						return m.Backward(r, outs[0], ins[1], arg, p.n, p.c, p.h, p.w)
					},
					Ref: func(outs, ins [][]float64) {
						_, a := refMaxPool(p, ins[0])
						ref.MaxPool2DBackward(outs[0], ins[1], a, p.n*p.c, p.h, p.w, oh, ow)
					},
				})
			})
		}
	}
}

// TestGlobalAvgPoolMixed: under mixed precision the pool reads f16
// activations into an f32 representation, and its backward takes the f32
// gradient back into f16.
func TestGlobalAvgPoolMixed(t *testing.T) {
	d := gputest.Device(t)
	gputest.NeedF16(t, d)
	g := NewGlobalAvgPool(d)
	const n, c, hw = 3, 17, 49
	h := []gpu.DType{gpu.F16}
	gputest.Check(t, d, kcheck.Op{
		Inputs: [][]int{{n, c, hw}}, Outputs: [][]int{{n, c}}, InTypes: h, Tol: kcheck.Reduction,
		GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return g.Forward(r, o[0], i[0], n, c, hw) },
		Ref: func(o, i [][]float64) { ref.GlobalAvgPool(o[0], i[0], n*c, hw) },
	})
	gputest.Check(t, d, kcheck.Op{
		Inputs: [][]int{{n, c}}, Outputs: [][]int{{n, c, hw}}, OutTypes: h, Tol: kcheck.HalfStorage,
		GPU: func(r *gpu.Recorder, o, i []*gpu.Tensor) error { return g.Backward(r, o[0], i[0], n, c, hw) },
		Ref: func(o, i [][]float64) { ref.GlobalAvgPoolBackward(o[0], i[0], n*c, hw) },
	})
}

// TestPoolPyTorch replays torch.nn.functional.max_pool2d (with its indices)
// and AdaptiveAvgPool2d(1), forward and backward, in float64.
func TestPoolPyTorch(t *testing.T) {
	d := gputest.Device(t)
	for _, name := range []string{"pool_max", "pool_max_ties", "pool_max_k2"} {
		t.Run(name, func(t *testing.T) {
			f, v := loadFixture(t, name, "x", "y", "argmax", "dy", "dx")
			sz := metaInts(t, f, "n", "c", "h", "w", "k", "stride", "pad")
			p := poolShape{sz[0], sz[1], sz[2], sz[3], sz[4], sz[5], sz[6]}
			m, arg, _ := newTestMaxPool(t, d, p)
			oh, ow := p.out()
			x, dy := upload(t, d, v["x"], p.n, p.c, p.h, p.w), upload(t, d, v["dy"], p.n, p.c, oh, ow)
			y, dx := upload(t, d, make([]float64, p.n*p.c*oh*ow), p.n, p.c, oh, ow), upload(t, d, make([]float64, p.n*p.c*p.h*p.w), p.n, p.c, p.h, p.w)
			if err := d.Run(func(r *gpu.Recorder) error {
				if err := m.Forward(r, y, arg, x, p.n, p.c, p.h, p.w); err != nil {
					return err
				}
				return m.Backward(r, dx, dy, arg, p.n, p.c, p.h, p.w)
			}); err != nil {
				t.Fatal(err)
			}
			for _, c := range []struct {
				name string
				got  *gpu.Tensor
				tol  float64
			}{{"y", y, 1e-4}, {"argmax", arg, 0}, {"dx", dx, 1e-4}} {
				if err := ref.Compare(download(t, c.got), v[c.name], c.tol); err != nil {
					t.Errorf("%s against PyTorch: %v", c.name, err)
				}
			}
			// The float64 reference, ties included, must agree exactly.
			ry, ra := refMaxPool(p, v["x"])
			rdx := make([]float64, len(v["x"]))
			ref.MaxPool2DBackward(rdx, v["dy"], ra, p.n*p.c, p.h, p.w, oh, ow)
			rarg := make([]float64, len(ra))
			for i, a := range ra {
				rarg[i] = float64(a)
			}
			for k, w := range map[string][]float64{"y": ry, "argmax": rarg, "dx": rdx} {
				if err := ref.Compare(w, v[k], 1e-12); err != nil {
					t.Errorf("float64 reference %s against PyTorch: %v", k, err)
				}
			}
		})
	}
	t.Run("pool_avg", func(t *testing.T) {
		f, v := loadFixture(t, "pool_avg", "x", "y", "dy", "dx")
		sz := metaInts(t, f, "n", "c", "h", "w")
		n, c, hw := sz[0], sz[1], sz[2]*sz[3]
		g := NewGlobalAvgPool(d)
		x, dy := upload(t, d, v["x"], n, c, hw), upload(t, d, v["dy"], n, c)
		y, dx := upload(t, d, make([]float64, n*c), n, c), upload(t, d, make([]float64, n*c*hw), n, c, hw)
		if err := d.Run(func(r *gpu.Recorder) error {
			if err := g.Forward(r, y, x, n, c, hw); err != nil {
				return err
			}
			return g.Backward(r, dx, dy, n, c, hw)
		}); err != nil {
			t.Fatal(err)
		}
		if err := ref.Compare(download(t, y), v["y"], 1e-4); err != nil {
			t.Errorf("y against PyTorch: %v", err)
		}
		if err := ref.Compare(download(t, dx), v["dx"], 1e-4); err != nil {
			t.Errorf("dx against PyTorch: %v", err)
		}
		ry, rdx := make([]float64, n*c), make([]float64, n*c*hw)
		ref.GlobalAvgPool(ry, v["x"], n*c, hw)
		ref.GlobalAvgPoolBackward(rdx, v["dy"], n*c, hw)
		for k, w := range map[string][]float64{"y": ry, "dx": rdx} {
			if err := ref.Compare(w, v[k], 1e-12); err != nil {
				t.Errorf("float64 reference %s against PyTorch: %v", k, err)
			}
		}
	})
}

// TestPoolErrors: bad geometry and wrong sizes come back as errors.
func TestPoolErrors(t *testing.T) {
	d := gputest.Device(t)
	for _, g := range [][3]int{{0, 1, 0}, {3, 0, 1}, {3, 2, 2}, {3, 2, -1}} {
		if _, err := NewMaxPool2D(d, g[0], g[1], g[2]); err == nil {
			t.Errorf("NewMaxPool2D%v returned no error", g)
		}
	}
	m, err := NewMaxPool2D(d, 3, 2, 1)
	if err != nil {
		t.Fatal(err)
	}
	small, err := NewMaxPool2D(d, 5, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	big, err := NewMaxPool2D(d, 5, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	g := NewGlobalAvgPool(d)
	x := upload(t, d, make([]float64, 2*3*8*8), 2, 3, 8, 8)
	y := upload(t, d, make([]float64, 2*3*4*4), 2, 3, 4, 4)
	a := upload(t, d, make([]float64, 2*3*4*4), 2, 3, 4, 4)
	wrong := upload(t, d, make([]float64, 5), 5)
	cases := []struct {
		name, want string
		run        func(r *gpu.Recorder) error
	}{
		{"max output", "out is", func(r *gpu.Recorder) error { return m.Forward(r, wrong, y, x, 2, 3, 8, 8) }},
		{"max argmax", "argmax is", func(r *gpu.Recorder) error { return m.Forward(r, y, wrong, x, 2, 3, 8, 8) }},
		{"max nil", "argmax is nil", func(r *gpu.Recorder) error { return m.Backward(r, x, y, nil, 2, 3, 8, 8) }},
		{"max input", "in is", func(r *gpu.Recorder) error { return m.Forward(r, y, a, x, 2, 3, 8, 7) }},
		{"window too big", "smaller than the window", func(r *gpu.Recorder) error { return small.Forward(r, y, a, x, 2, 3, 8, 3) }},
		{"window too big, even", "smaller than the window", func(r *gpu.Recorder) error { return big.Forward(r, y, a, x, 2, 3, 4, 16) }},
		{"zero size", "must be ≥ 1", func(r *gpu.Recorder) error { return m.Forward(r, y, y, x, 0, 3, 8, 8) }},
		{"avg output", "out is", func(r *gpu.Recorder) error { return g.Forward(r, y, x, 2, 3, 64) }},
		{"avg backward", "dIn is", func(r *gpu.Recorder) error { return g.Backward(r, wrong, wrong, 2, 3, 64) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := d.Run(c.run)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("got %v, want an error containing %q", err, c.want)
			}
		})
	}
}
