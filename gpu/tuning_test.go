package gpu_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// TestGemmVariants checks every tile that tuning may choose, for every form
// of product, against float64: dense products with each transpose, and the
// three passes of convolutions, on sizes that are multiples of no tile and
// large enough to reach the 128-wide tiles. Tiles with vec4 loads run a
// second time on sizes that are multiples of 4 (but of no tile), where
// they load vec4s; the kernels compiled show that every variant ran.
func TestGemmVariants(t *testing.T) {
	d := gputest.Device(t)
	defer d.SetTuning(gpu.Tuning{})
	for _, sh := range []struct {
		m, n, k int
		vec     bool // aligned for vec4 loads: only tiles with Vec4 run
	}{{65, 129, 33, false}, {68, 132, 36, true}} {
		m, n, k := sh.m, sh.n, sh.k
		for _, ta := range []bool{false, true} {
			for _, tb := range []bool{false, true} {
				c := gpu.ClassOf(gpu.GemmDense, ta, tb, m, n, k)
				for _, tile := range d.GemmTiles(c) {
					if sh.vec && !tile.Vec4 {
						continue
					}
					t.Run(fmt.Sprintf("%v-%dx%dx%d/%+v", c, m, n, k, tile), func(t *testing.T) {
						if err := d.SetTuning(gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{c: tile}}); err != nil {
							t.Fatal(err)
						}
						gputest.Check(t, d, kcheck.Op{
							Inputs: [][]int{{m, k}, {k, n}}, Outputs: [][]int{{m, n}}, Tol: kcheck.Reduction,
							GPU: func(r *gpu.Recorder, outs, ins []*gpu.Tensor) error {
								return gpu.Gemm(r, outs[0], ins[0], ins[1], gpu.GemmOp{M: m, N: n, K: k, TransA: ta, TransB: tb, Alpha: 1})
							},
							Ref: func(outs, ins [][]float64) { ref.Gemm(outs[0], ins[0], ins[1], 1, m, n, k, ta, tb, 1, 0) },
						})
					})
				}
			}
		}
	}
	splits := map[int]bool{}
	for _, sh := range []struct {
		s gpu.ConvShape
		// planes and reductions multiples of 4, a weight gradient's
		// reduction long enough for every SplitK: only tiles with Vec4
		// or SplitK run
		vec bool
	}{
		{gpu.ConvShape{N: 2, Cin: 3, H: 9, W: 9, Cout: 65, KH: 3, KW: 3, Stride: 2, Pad: 1}, false},
		{gpu.ConvShape{N: 2, Cin: 5, H: 11, W: 13, Cout: 33, KH: 3, KW: 3, Stride: 1, Pad: 1}, false},
		{gpu.ConvShape{N: 4, Cin: 4, H: 19, W: 20, Cout: 20, KH: 3, KW: 3, Stride: 1, Pad: 1}, true},
	} {
		s := sh.s
		classes := convClasses(t, d, s)
		var tiles []gpu.GemmTile
		for _, c := range classes {
			for _, tile := range d.GemmTiles(c) {
				if !slices.Contains(tiles, tile) && (!sh.vec || tile.Vec4 || tile.SplitK > 0) {
					tiles = append(tiles, tile)
				}
			}
		}
		for _, tile := range tiles {
			splits[tile.SplitK] = true
			chosen := map[gpu.GemmClass]gpu.GemmTile{}
			for _, c := range classes {
				if slices.Contains(d.GemmTiles(c), tile) {
					chosen[c] = tile
				}
			}
			if err := d.SetTuning(gpu.Tuning{Gemm: chosen}); err != nil {
				t.Fatal(err)
			}
			t.Run(fmt.Sprintf("conv-%dx%dx%dx%d-%d/%+v", s.N, s.Cin, s.H, s.W, s.Cout, tile), func(t *testing.T) { checkConvPasses(t, d, s, kcheck.Reduction, gpu.F32, gpu.ConvTilesAuto) })
		}
	}
	for _, n := range []int{4, 16, 64, 256} {
		if !splits[n] {
			t.Errorf("no weight gradient ran in %d chunks (SplitK)", n)
		}
	}
	staged := func(want ...string) func(string) bool {
		return func(k string) bool {
			if !strings.HasPrefix(k, "gemm_staged{") {
				return false
			}
			for _, w := range want {
				if neg, ok := strings.CutPrefix(w, "!"); ok && strings.Contains(k, neg) || !ok && !strings.Contains(k, w) {
					return false
				}
			}
			return true
		}
	}
	compiled := gpu.CompiledKernels(d)
	for _, v := range []struct {
		what string
		ok   func(string) bool
	}{
		{"vec4 loads of A along k", staged("A=dense", "VecA=true", "!TransA")},
		{"vec4 loads of a transposed A", staged("VecA=true", "TransA=true")},
		{"vec4 loads of dy", staged("A=dy", "VecA=true")},
		{"vec4 loads of B along n", staged("VecB=true", "!TransB")},
		{"vec4 loads of a transposed B", staged("VecB=true", "TransB=true")},
		{"double-buffered, padded arrays", staged("Double=true", "Pad=4")},
		{"a forward pass over every image", staged("B=im2col,", "Flat=true")},
		{"a data gradient over every image", staged("B=dy_col", "Flat=true")},
	} {
		if !slices.ContainsFunc(compiled, v.ok) {
			t.Errorf("no staged kernel with %s ran", v.what)
		}
	}
}

// convClasses is the classes of the products a convolution's three passes
// record.
func convClasses(t *testing.T, d *gpu.Device, s gpu.ConvShape) []gpu.GemmClass {
	t.Helper()
	oh, ow := s.Out()
	var ts []*gpu.Tensor
	for _, n := range []int{s.N * s.Cin * s.H * s.W, s.Cout * s.Cin * s.KH * s.KW, s.N * s.Cout * oh * ow} {
		x, err := d.NewTensor(n)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Release()
		ts = append(ts, x)
	}
	x, w, y := ts[0], ts[1], ts[2]
	d.CollectGemms(true)
	defer d.CollectGemms(false)
	r, err := d.Record(false)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Discard()
	for _, err := range []error{gpu.ConvForward(r, y, x, w, s), gpu.ConvBackwardData(r, x, y, w, s), gpu.ConvBackwardWeight(r, w, y, x, s)} {
		if err != nil {
			t.Fatal(err)
		}
	}
	var out []gpu.GemmClass
	for _, c := range d.CollectedGemms() {
		out = append(out, c.Class)
	}
	if len(out) < 3 {
		t.Fatalf("the three passes of %+v recorded %d classes of product: %v", s, len(out), out)
	}
	return out
}

// TestGemmClass checks the class's text form both ways and that a
// damaged one is refused.
func TestGemmClass(t *testing.T) {
	for _, c := range []gpu.GemmClass{
		gpu.ClassOf(gpu.GemmDense, true, false, 65, 129, 33),
		gpu.ClassOf(gpu.GemmDense, true, true, 1, 1, 1),
		gpu.ClassOf(gpu.GemmConvWeight, false, false, 64, 576, 100352),
	} {
		b, err := c.MarshalText()
		if err != nil {
			t.Fatal(err)
		}
		var back gpu.GemmClass
		if err := back.UnmarshalText(b); err != nil || back != c {
			t.Errorf("%v → %q → %v, %v", c, b, back, err)
		}
	}
	if c := gpu.ClassOf(gpu.GemmDense, true, false, 65, 129, 33); c.String() != "dense-ta/m128-n256-k64" {
		t.Errorf("ClassOf(dense, tA, 65, 129, 33) = %v, want dense-ta/m128-n256-k64", c)
	}
	for _, bad := range []string{"", "dense", "dense/m3-n4-k4", "conv-forward-ta/m4-n4-k4", "sparse/m4-n4-k4", "dense/m4-n4", "dense/n4-m4-k4", "dense/m4-n4-kx"} {
		var c gpu.GemmClass
		if err := c.UnmarshalText([]byte(bad)); err == nil {
			t.Errorf("class %q was accepted as %v", bad, c)
		}
	}
}

// TestSetTuningRefuses checks that a tile the device cannot run is refused
// and leaves the tuning as it was.
func TestSetTuningRefuses(t *testing.T) {
	d := gputest.Device(t)
	defer d.SetTuning(gpu.Tuning{})
	c := gpu.ClassOf(gpu.GemmDense, false, false, 64, 64, 64)
	good := gpu.GemmTile{BM: 32, BN: 32, BK: 8, TM: 4, TN: 4}
	if err := d.SetTuning(gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{c: good}}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []gpu.GemmTile{
		{BM: 32, BN: 32, BK: 8, TM: 3, TN: 4},    // not whole vec4s
		{BM: 512, BN: 512, BK: 64, TM: 4, TN: 4}, // too many threads
		{BM: 4, BN: 30, TM: 4, TN: 4, Direct: true},
		{BM: 32, BN: 32, BK: 8, TM: 4, TN: 4, Pad: 2},                    // rows not whole vec4s
		{BM: 32, BN: 32, BK: 6, TM: 4, TN: 4, Vec4: true},                // vec4 loads over part of a step
		{BM: 128, BN: 128, BK: 64, TM: 8, TN: 8, Double: true},           // beyond workgroup memory
		{BM: 16, TM: 16, BN: 64, TN: 8, BK: 8, Direct: true, Vec4: true}, // direct tiles stage nothing
		{BM: 32, BN: 32, BK: 8, TM: 4, TN: 4, SplitK: 4},                 // a dense product is not split
		{BM: 32, BN: 32, BK: 8, TM: 4, TN: 4, SplitK: -1},
	} {
		if err := d.SetTuning(gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{c: bad}}); err == nil {
			t.Errorf("tile %+v was accepted", bad)
		}
	}
	wgrad := gpu.ClassOf(gpu.GemmConvWeight, false, false, 64, 64, 4096)
	if err := d.SetTuning(gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{wgrad: {BM: 4, BN: 64, TM: 4, TN: 4, Direct: true, SplitK: 4}}}); err == nil {
		t.Error("a weight gradient's tile without BK, whose chunks are whole steps of BK, was accepted")
	}
	if got := d.Tuning().Gemm[c]; got != good {
		t.Errorf("after refusals the tuning holds %+v, want %+v", got, good)
	}
	split := gpu.GemmTile{BM: 16, TM: 16, BN: 64, TN: 8, BK: 8, Direct: true, SplitK: 64}
	if err := d.SetTuning(gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{wgrad: split}}); err != nil {
		t.Errorf("a weight gradient's tile %+v: %v", split, err)
	}
}
