package shaders

import (
	"slices"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	src, err := Render("reduce", Reduce{Op: ReduceSum, X: F32, Columns: Columns{BX: 32, BY: 8}})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fn total(v: f32, lx: u32, ly: u32) -> f32", "array<f32, 256>", "@workgroup_size(256)"} {
		if !strings.Contains(src, want) {
			t.Errorf("rendered reduce lacks %q", want)
		}
	}
	// With Subgroups, a workgroup of one column sums in subgroups; the
	// tree's loop is gone.
	src, err = Render("reduce", Reduce{Op: ReduceSum, X: F32, Columns: Columns{BX: 1, BY: 256}, Subgroups: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"subgroupAdd(v)", "@builtin(subgroup_id)", "@workgroup_size(256)"} {
		if !strings.Contains(src, want) {
			t.Errorf("reduce with subgroups lacks %q", want)
		}
	}
	if strings.Contains(src, "s >> 1u") {
		t.Error("reduce with subgroups still has the tree")
	}
	if _, err := Render("reduce", Reduce{Op: ReduceSum, X: F32, Columns: Columns{BX: 32}}); err == nil || !strings.Contains(err.Error(), "BY") {
		t.Errorf("a missing specialisation gave %v", err)
	}
	// f16 input (mixed precision): enabled first, read as f32.
	src, err = Render("reduce", Reduce{Op: ReduceSum, X: F16, Columns: Columns{BX: 32, BY: 8}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(strings.TrimLeft(stripComments(src), "\n"), "enable f16;") || !strings.Contains(src, "array<f16>") || !strings.Contains(src, "f32(x[") {
		t.Errorf("reduce of f16 does not enable f16 first, bind f16 and widen:\n%s", src)
	}
	if _, err := Render("nope", Reduce{Op: ReduceSum, Columns: Columns{BX: 32, BY: 8}}); err == nil {
		t.Error("an unknown kernel rendered")
	}
	if k := (Reduce{Op: ReduceSum, Columns: Columns{BX: 32, BY: 8}}).Key(); k != "BX=32,BY=8,Op=sum" {
		t.Errorf("Key %q is not sorted", k)
	}
	names := Names()
	if !slices.Contains(names, "gemm_staged") || slices.Contains(names, "lib") {
		t.Errorf("Names %v", names)
	}
}

// TestGemmSpecs renders both GEMM kernels and btloss_tile in every operand
// mode they take, and checks that invalid specs are refused before
// rendering, naming what is wrong.
func TestGemmSpecs(t *testing.T) {
	conv := Conv{KH: 3, KW: 3, Stride: 2, Pad: 1}
	phase := Phase{PY: 1, PX: 0, TY: 1, TX: 2, QY: 1, QX: 0}
	modes := []GemmOperands{
		{A: ADense, B: BDense}, {A: ADense, B: BDense, TransA: true, TransB: true},
		{A: ADense, B: BIm2col, Conv: conv}, {A: ADense, B: BDyCol, Conv: conv, Phase: phase},
		{A: ADy, B: BIm2colT, SplitK: true, Conv: conv},
		{A: ADense, B: BIm2col, Conv: conv, Epilogue: EpilogueBiasReLU},
	}
	tile := Tile{BM: 32, BN: 64, BK: 8, TM: 4, TN: 8}
	for _, ops := range modes {
		staged := GemmStaged{Tile: tile, GemmOperands: ops}
		staged.AKFast, staged.BKFast = ops.AAlongK(), ops.BAlongK()
		src, err := Render("gemm_staged", staged)
		if err != nil {
			t.Fatalf("%+v: %v", ops, err)
		}
		for _, want := range []string{"@workgroup_size(8, 8)", "const THREADS = 64u;", "fn tile_a(", "acc_3_1"} {
			if !strings.Contains(src, want) {
				t.Errorf("gemm_staged %s lacks %q", staged.Key(), want)
			}
		}
		// The variants: two padded halves of the arrays, vec4 loads of
		// the stored operands, every image's positions as columns.
		staged.Double, staged.Pad = true, 4
		staged.VecA = ops.A == ADense || ops.A == ADy
		staged.VecB = ops.B == BDense
		staged.Flat = ops.B == BIm2col || ops.B == BDyCol
		src, err = Render("gemm_staged", staged)
		if err != nil {
			t.Fatalf("%s: %v", staged.Key(), err)
		}
		for _, want := range []string{"var<workgroup> ta: array<vec4<f32>, 144>;", "var<workgroup> tb: array<vec4<f32>, 272>;", "half = 1u - half;",
			map[bool]string{true: "fn tile_a4(", false: "fn tile_a("}[staged.VecA], map[bool]string{true: "fn tile_b4(", false: "fn tile_b("}[staged.VecB],
			map[bool]string{true: "fn plane()", false: "fn out_index("}[staged.Flat]} {
			if !strings.Contains(src, want) {
				t.Errorf("gemm_staged %s lacks %q", staged.Key(), want)
			}
		}
		for _, flat := range []bool{false, true} {
			direct := GemmDirect{TM: 16, TN: 8, Threads: 8, KStep: 4, GemmOperands: ops}
			direct.Flat = flat && (ops.B == BIm2col || ops.B == BDyCol)
			if ops.TransA {
				direct.KStep = 1
			}
			src, err := Render("gemm_direct", direct)
			if err != nil {
				t.Fatalf("%+v: %v", direct, err)
			}
			for _, want := range []string{"@workgroup_size(8)", "acc_15_7", "fn out_index("} {
				if !strings.Contains(src, want) {
					t.Errorf("gemm_direct %s lacks %q", direct.Key(), want)
				}
			}
			if (ops.Epilogue != EpilogueNone) != strings.Contains(src, "@binding(4) var<storage, read> bias") {
				t.Errorf("gemm_direct %s: epilogue %q but bias binding present %v", direct.Key(), ops.Epilogue, ops.Epilogue == EpilogueNone)
			}
			if direct.Flat != strings.Contains(src, "fn plane()") {
				t.Errorf("gemm_direct %s: Flat %v but plane() present %v", direct.Key(), direct.Flat, !direct.Flat)
			}
		}
	}
	// Mixed precision: f16 operands are declared f16, widened on load,
	// and the kernel enables f16 before anything else.
	half := GemmOperands{A: ADense, B: BIm2col, Conv: conv, CType: F16, AType: F32, BType: F16}
	for _, spec := range []Specialisation{GemmStaged{Tile: tile, GemmOperands: half}, GemmDirect{TM: 16, TN: 8, Threads: 8, KStep: 4, GemmOperands: half}} {
		name := map[bool]string{true: "gemm_staged", false: "gemm_direct"}[strings.Contains(spec.Key(), "BK=")]
		src, err := Render(name, spec)
		if err != nil {
			t.Fatalf("%s %s: %v", name, spec.Key(), err)
		}
		for _, want := range []string{"c: array<f16>", "b: array<f16>", "f32(b[", "f16(r)"} {
			if !strings.Contains(src, want) {
				t.Errorf("%s %s lacks %q", name, spec.Key(), want)
			}
		}
		if !strings.HasPrefix(strings.TrimLeft(stripComments(src), "\n"), "enable f16;") {
			t.Errorf("%s %s does not begin with enable f16", name, spec.Key())
		}
	}
	if src, err := Render("btloss_tile", tile); err != nil || !strings.Contains(src, "fn tile_a(") {
		t.Errorf("btloss_tile: %v", err)
	}
	if k := (GemmStaged{Tile: tile, GemmOperands: modes[0]}).Key(); k != "A=dense,B=dense,BK=8,BM=32,BN=64,TM=4,TN=8" {
		t.Errorf("Key %q: want sorted key=value pairs without zero values", k)
	}

	for _, c := range []struct {
		name string
		spec Specialisation
		want string
	}{
		{"tile", Tile{BM: 32, BN: 64, BK: 8, TM: 6, TN: 8}, "multiples of 4"},
		{"no BK", Tile{BM: 32, BN: 64, TM: 4, TN: 8}, "BK ≥ 1"},
		{"unknown B", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADense, B: "im2row", Conv: conv}}, "unknown B operand"},
		{"dense with geometry", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADense, B: BDense, Conv: conv}}, "without convolution geometry"},
		{"transposed gather", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADense, B: BIm2col, TransA: true, Conv: conv}}, "only dense operands"},
		{"no kernel size", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADense, B: BIm2col}}, "convolution sizes"},
		{"unsplit wgrad", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADy, B: BIm2colT, Conv: conv}}, "splits its reduction"},
		{"phase outside stride", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADense, B: BDyCol, Conv: conv, Phase: Phase{PY: 2, TY: 1, TX: 1}}}, "phase offsets"},
		{"phase without dgrad", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADense, B: BIm2col, Conv: conv, Phase: phase}}, "only a data gradient"},
		{"staged flat wgrad", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADy, B: BIm2colT, SplitK: true, Conv: conv, Flat: true}}, "flattened"},
		{"odd padding", Tile{BM: 32, BN: 64, BK: 8, TM: 4, TN: 8, Pad: 2}, "multiple of 4 floats"},
		{"vec4 odd step", Tile{BM: 32, BN: 64, BK: 6, TM: 4, TN: 8, VecA: true}, "BK a multiple of 4"},
		{"vec4 gathered B", GemmStaged{Tile: Tile{BM: 32, BN: 64, BK: 8, TM: 4, TN: 8, VecB: true}, GemmOperands: modes[2]}, "vec4 loads of B"},
		{"dense epilogue", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADense, B: BDense, Epilogue: EpilogueBias}}, "only a convolution's forward"},
		{"unknown epilogue", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADense, B: BIm2col, Conv: conv, Epilogue: "gelu"}}, "unknown epilogue"},
		{"direct step", GemmDirect{TM: 16, TN: 8, Threads: 8, KStep: 2, GemmOperands: modes[0]}, "KStep must be 1 or 4"},
		{"direct vec4 transposed", GemmDirect{TM: 16, TN: 8, Threads: 8, KStep: 4, GemmOperands: modes[1]}, "transposed A"},
		{"direct flat wgrad", GemmDirect{TM: 16, TN: 8, Threads: 8, KStep: 1, GemmOperands: GemmOperands{A: ADy, B: BIm2colT, SplitK: true, Flat: true, Conv: conv}}, "flattened"},
		{"direct threads", GemmDirect{TM: 16, TN: 8, KStep: 1, GemmOperands: modes[0]}, "Threads must be ≥ 1"},
		{"element type", GemmStaged{Tile: tile, GemmOperands: GemmOperands{A: ADense, B: BDense, AType: "bf16"}}, "element types"},
	} {
		if _, err := Render("gemm_staged", c.spec); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error with %q", c.name, err, c.want)
		}
	}
}

// stripComments drops // comments, so that what a source begins with can
// be checked.
func stripComments(src string) string {
	var out []string
	for _, l := range strings.Split(src, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "//") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
