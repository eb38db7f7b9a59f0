package shaders

import (
	"strings"
	"testing"
)

// TestSpecs renders every kernel but the GEMMs (TestGemmSpecs) with a
// valid spec of its family, and checks that each family refuses values its
// kernel cannot run with, naming what is wrong, before rendering.
func TestSpecs(t *testing.T) {
	wg := func(n int) Threads { return Threads{WG: n} }
	cols := Columns{BX: 32, BY: 8}
	op := BNOp{Mode: BNTrain, Affine: true, ReLU: true}
	for _, tc := range []struct {
		kernel string
		good   Specialisation
		bad    Specialisation
		want   string // in bad's error
	}{
		{"reduce", Reduce{Op: ReduceMeanVar, X: F16, Columns: Columns{BX: 1, BY: 256}, Subgroups: true},
			Reduce{Op: ReduceSum, Columns: Columns{BX: 32, BY: 8}, Subgroups: true}, "one column"},
		{"reduce", Reduce{Op: ReduceSumSq, Columns: cols}, Reduce{Op: "prod", Columns: cols}, `reduction "prod"`},
		{"elementwise", Elementwise{Expr: "a[i] + b[i]", Inputs: []string{"a", "b"}, Halves: []string{"y", "b"}, Threads: wg(256), E: 1},
			Elementwise{Expr: "a[i]", Inputs: []string{"a"}, Halves: []string{"c"}, Threads: wg(256), E: 1}, `"c" stored as f16`},
		{"elementwise", Elementwise{Expr: "1.0", Threads: wg(64), E: 16}, Elementwise{Expr: "1.0", Threads: wg(512), E: 1}, "512 invocations"},
		{"elementwise", Elementwise{Expr: "1.0", Threads: wg(64), E: 4}, Elementwise{Expr: "1.0", Threads: wg(64)}, "0 elements per invocation"},
		{"fma", FMA{Chains: 3, Unroll: 8, Threads: wg(64)}, FMA{Chains: 0, Unroll: 8, Threads: wg(64)}, "0 chains"},
		{"subgroup_size", SubgroupProbe{wg(256)}, SubgroupProbe{wg(0)}, "0 invocations"},
		{"pool", Pool{Op: MaxPool, K: 3, S: 2, Pad: 1, In: F16, Out: F16, Threads: wg(256)},
			Pool{Op: MaxPool, K: 3, S: 2, Pad: 2, Threads: wg(256)}, "Pad ≤ K/2"},
		{"pool", Pool{Op: AvgPoolBackward, Threads: wg(256)}, Pool{Op: AvgPool, K: 3, Threads: wg(256)}, "no window"},
		{"rownorm", RowNorm{Mode: Std, Backward: true, Subgroups: true, Threads: wg(64)},
			RowNorm{Mode: L2, Threads: wg(96)}, "power of two"},
		{"xent", Xent{Backward: true, Threads: wg(64)}, Xent{Threads: wg(48)}, "power of two"},
		{"optim", Optim{Rule: AdamW, E: 4, Subgroups: true, Threads: wg(256)},
			Optim{Rule: Momentum, E: 0, Threads: wg(256)}, "0 elements"},
		{"optim", Optim{Rule: Momentum, Trust: true, E: 1, Threads: wg(256)}, Optim{Rule: "lamb", E: 1, Threads: wg(256)}, `"lamb"`},
		{"optim_norms", OptimNorms{Subgroups: true, Threads: wg(256)}, OptimNorms{Threads: wg(100)}, "power of two"},
		{"btloss_norm", BTLossNorm{Norm: true, Given: true, Columns: cols}, BTLossNorm{Columns: Columns{BX: 32, BY: 6}}, "power of two"},
		{"btloss_back", BTLossBack{Norm: true, Columns: cols}, BTLossBack{Columns: Columns{BX: 64, BY: 8}}, "≤ 256"},
		{"btloss_sum", BTLossSum{Dot: true, Subgroups: true, Threads: wg(256)}, BTLossSum{Threads: wg(257)}, "257"},
		{"btloss_finish", BTLossFinish{Full: true, Loss: true, Threads: wg(256)}, BTLossFinish{Threads: wg(3)}, "power of two"},
		{"batchnorm", BatchNorm{BNOp: op, V: 4, Columns: Columns{BX: 1, BY: 256}, Subgroups: true},
			BatchNorm{BNOp: op, V: 2, Columns: Columns{BX: 1, BY: 256}}, "2 values"},
		{"batchnorm", BatchNorm{BNOp: BNOp{Mode: BNEval, Half: true}, V: 1, Columns: Columns{BX: 1, BY: 256}},
			BatchNorm{BNOp: BNOp{Mode: BNEval}, V: 4, Columns: Columns{BX: 1, BY: 256}}, "one value per invocation"},
		{"batchnorm", BatchNorm{BNOp: BNOp{Mode: BNBackward, Half: true}, V: 1, Columns: cols},
			BatchNorm{BNOp: BNOp{Mode: "apply"}, V: 1, Columns: cols}, `BatchNorm pass "apply"`},
		{"batchnorm_serial", BatchNormSerial{BNOp: BNOp{Mode: BNBackward, Affine: true, ReLU: true}, Pass: 2},
			BatchNormSerial{BNOp: op, Pass: 3}, "pass 3"},
		{"batchnorm_sync", BatchNormSync{Mode: BNSyncGrad, Affine: true, Half: true, Threads: wg(256)},
			BatchNormSync{Mode: BNSyncStats, Threads: wg(200)}, "power of two"},
		{"augment", Augment{Stage: AugmentBlur, C: 3, Meta: 40, Vertical: true},
			Augment{Stage: AugmentColour, C: 3, Meta: 40, Vertical: true}, "vertical"},
		{"augment", Augment{Stage: AugmentResize, C: 1, Meta: 40, Bicubic: true}, Augment{Stage: AugmentFinish, C: 2, Meta: 40}, "2 channels"},
	} {
		t.Run(tc.kernel+"/"+tc.good.Key(), func(t *testing.T) {
			src, err := Render(tc.kernel, tc.good)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(src, "@compute") || strings.Contains(src, "{{") {
				t.Errorf("rendered %s is not a whole kernel:\n%s", tc.kernel, src)
			}
			_, err = Render(tc.kernel, tc.bad)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("%s with %+v: got %v, want an error with %q", tc.kernel, tc.bad, err, tc.want)
			}
		})
	}
}

// TestReductionFromLib checks that the kernels that reduce over a
// workgroup take lib.tmpl's total rather than a tree of their own, and that
// a maximum reduces with max.
func TestReductionFromLib(t *testing.T) {
	for _, tc := range []struct {
		kernel string
		spec   Specialisation
		want   []string
	}{
		{"xent", Xent{Threads: Threads{WG: 64}}, []string{"fn reduce_max(v: f32, lx: u32, ly: u32)",
			"reduce_max_part[i] = max(reduce_max_part[i], reduce_max_part[i + s * 1u])", "fn reduce_sum(v: f32, lx: u32, ly: u32)"}},
		{"batchnorm_sync", BatchNormSync{Mode: BNSyncStats, Threads: Threads{WG: 256}}, []string{"fn total(v: vec2<f32>, lx: u32, ly: u32)"}},
		{"btloss_finish", BTLossFinish{Threads: Threads{WG: 256}}, []string{"fn total4(v: vec4<f32>", "fn total1(v: f32"}},
	} {
		src, err := Render(tc.kernel, tc.spec)
		if err != nil {
			t.Fatal(err)
		}
		for _, w := range tc.want {
			if !strings.Contains(src, w) {
				t.Errorf("%s lacks %q", tc.kernel, w)
			}
		}
		if n, lib := strings.Count(src, "var<workgroup>"), strings.Count(src, "_part: array<"); n != lib {
			t.Errorf("%s declares %d workgroup arrays, %d of them lib.tmpl's: a reduction of its own", tc.kernel, n, lib)
		}
	}
}

// TestReductionRefused checks that lib.tmpl's total refuses what it
// cannot build: a maximum in subgroups, and columns that do not halve.
func TestReductionRefused(t *testing.T) {
	for _, tc := range []struct {
		op        ReduceFn
		bx, by    int
		subgroups bool
		want      string
	}{
		{Max, 1, 64, true, "subgroups only add"},
		{Add, 1, 48, false, "power of two"},
		{Add, 2, 64, true, "one column"},
		{"min", 1, 64, false, `"min"`},
	} {
		if _, err := newReduction("total", tc.op, "f32", tc.bx, tc.by, tc.subgroups); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: got %v, want an error with %q", tc, err, tc.want)
		}
	}
}

// TestChoices checks that every layout a tuner may enumerate is valid.
func TestChoices(t *testing.T) {
	for _, c := range ThreadChoices() {
		if err := c.Validate(true); err != nil {
			t.Error(err)
		}
	}
	cs := ColumnChoices()
	if len(cs) == 0 {
		t.Fatal("no column layouts")
	}
	for _, c := range cs {
		if err := c.Validate(); err != nil {
			t.Error(err)
		}
	}
}
