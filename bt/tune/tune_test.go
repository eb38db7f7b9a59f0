package tune_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bt-org/bt/bt/tune"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/shaders"
)

// fakeClock advances only when the fake timer says work took time.
type fakeClock struct{ now time.Time }

func (c *fakeClock) Now() time.Time { return c.now }

// fakeTimer gives each tile a fixed time per run, advancing the clock by
// what it reports; a tile it has no time for fails to run.
type fakeTimer struct {
	clock  *fakeClock
	perRun map[gpu.GemmTile]time.Duration
	timed  []gpu.GemmTile
}

func (f *fakeTimer) TimeGemm(c gpu.GemmCase, tile gpu.GemmTile, reps int) (time.Duration, error) {
	d, ok := f.perRun[tile]
	if !ok {
		return 0, errors.New("pipeline refused")
	}
	f.timed = append(f.timed, tile)
	f.clock.now = f.clock.now.Add(d * time.Duration(reps))
	return d * time.Duration(reps), nil
}

var (
	builtin = gpu.GemmTile{BM: 128, BN: 128, BK: 16, TM: 8, TN: 8}
	faster  = gpu.GemmTile{BM: 64, BN: 64, BK: 16, TM: 4, TN: 4}
	slower  = gpu.GemmTile{BM: 32, BN: 32, BK: 8, TM: 4, TN: 4}
	broken  = gpu.GemmTile{BM: 32, BN: 64, BK: 8, TM: 4, TN: 4}
)

func denseCase(m, n, k int) gpu.GemmCase {
	return gpu.GemmCase{Class: gpu.ClassOf(gpu.GemmDense, false, false, m, n, k), Op: gpu.GemmOp{M: m, N: n, K: k}}
}

// TestGemmsChoosesFastest checks that the fake clock's fastest candidate
// wins, that a candidate within the margin does not displace the built-in
// tile, and that a candidate that fails is passed over.
func TestGemmsChoosesFastest(t *testing.T) {
	for _, tc := range []struct {
		name   string
		times  map[gpu.GemmTile]time.Duration
		margin float64
		want   gpu.GemmTile
	}{
		{"faster wins", map[gpu.GemmTile]time.Duration{builtin: 10 * time.Millisecond, faster: 5 * time.Millisecond, slower: 20 * time.Millisecond}, 0.03, faster},
		{"within the margin", map[gpu.GemmTile]time.Duration{builtin: 10 * time.Millisecond, faster: 9900 * time.Microsecond, slower: 20 * time.Millisecond}, 0.03, builtin},
		{"no margin", map[gpu.GemmTile]time.Duration{builtin: 10 * time.Millisecond, faster: 9900 * time.Microsecond, slower: 20 * time.Millisecond}, 0, faster},
		{"built-in fastest", map[gpu.GemmTile]time.Duration{builtin: 1 * time.Millisecond, faster: 5 * time.Millisecond, slower: 20 * time.Millisecond}, 0.03, builtin},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{}
			tm := &fakeTimer{clock: clock, perRun: tc.times}
			cands := func(gpu.GemmClass) []gpu.GemmTile { return []gpu.GemmTile{builtin, broken, slower, faster} }
			got, err := tune.Gemms(tm, []gpu.GemmCase{denseCase(100, 100, 100)}, cands, tune.Options{Clock: clock, Margin: tc.margin, Budget: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 1 || got[0].Tile != tc.want || got[0].Builtin != builtin || got[0].Tried != 4 {
				t.Fatalf("got %+v, want %+v chosen over built-in %+v after 4 tried", got, tc.want, builtin)
			}
			if got[0].Seconds > got[0].BuiltinSeconds {
				t.Errorf("chosen tile takes %g s, the built-in %g s", got[0].Seconds, got[0].BuiltinSeconds)
			}
		})
	}
}

// TestGemmsBudget checks that a budget spent stops the candidates but
// still times every class's built-in tile, and that a built-in tile that
// fails is an error.
func TestGemmsBudget(t *testing.T) {
	clock := &fakeClock{}
	tm := &fakeTimer{clock: clock, perRun: map[gpu.GemmTile]time.Duration{builtin: 10 * time.Millisecond, faster: 5 * time.Millisecond}}
	cands := func(gpu.GemmClass) []gpu.GemmTile { return []gpu.GemmTile{builtin, faster} }
	cases := []gpu.GemmCase{denseCase(10, 10, 10), denseCase(100, 100, 100), denseCase(1000, 1000, 1000)}
	got, err := tune.Gemms(tm, cases, cands, tune.Options{Clock: clock, Budget: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range got {
		if c.Tried != 1 || c.Tile != builtin {
			t.Errorf("%v: with the budget spent, %d tried and %+v chosen; want the built-in alone", c.Case.Class, c.Tried, c.Tile)
		}
	}
	if len(got) != len(cases) {
		t.Fatalf("%d choices for %d cases", len(got), len(cases))
	}
	tm.perRun = map[gpu.GemmTile]time.Duration{faster: time.Millisecond}
	if _, err := tune.Gemms(tm, cases[:1], cands, tune.Options{Clock: clock}); err == nil || !strings.Contains(err.Error(), "built-in") {
		t.Errorf("a failing built-in tile gave %v, want an error naming it", err)
	}
}

// TestCache checks that choices round-trip through the file, that entries
// of other keys are kept, and that a foreign key, another format and
// damaged files are refused.
func TestCache(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "bt", "tune.json")
	key := tune.Key{Adapter: "llvmpipe", Vendor: "Mesa", Driver: "Mesa 22.3.6", Backend: "Vulkan", Version: "v1.2.3"}
	other := key
	other.Version = "v1.2.4"
	if _, err := tune.Load(path, key); !errors.Is(err, tune.ErrNoEntry) {
		t.Fatalf("a missing file gave %v, want ErrNoEntry", err)
	}
	c1, c2 := gpu.ClassOf(gpu.GemmDense, true, false, 65, 129, 33), gpu.ClassOf(gpu.GemmConvWeight, false, false, 64, 576, 9999)
	c3 := gpu.ClassOf(gpu.GemmDense, false, false, 256, 256, 256)
	k1, k2 := gpu.KernelClassOf(gpu.FamilyBatchNorm, 256, 16, 196), gpu.KernelClassOf(gpu.FamilyElementwise, 100000, 1, 1)
	t1 := gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{c1: faster, c2: {BM: 16, TM: 16, BN: 64, TN: 8, BK: 8, Direct: true, SplitK: 64},
		c3: {BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, Double: true, Pad: 4, Vec4: true}},
		Kernels: map[gpu.KernelClass]gpu.KernelVariant{k1: {Serial: true}, k2: {Threads: shaders.Threads{WG: 64}, E: 16}}}
	t2 := gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{c1: slower},
		Kernels: map[gpu.KernelClass]gpu.KernelVariant{k1: {Columns: shaders.Columns{BX: 2, BY: 128}}}}
	if err := tune.Save(path, key, t1); err != nil {
		t.Fatal(err)
	}
	if err := tune.Save(path, other, t2); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  tune.Key
		want gpu.Tuning
	}{{key, t1}, {other, t2}} {
		got, err := tune.Load(path, c.key)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Gemm) != len(c.want.Gemm) || len(got.Kernels) != len(c.want.Kernels) {
			t.Fatalf("%v: loaded %v, saved %v", c.key, got, c.want)
		}
		for cl, tile := range c.want.Gemm {
			if got.Gemm[cl] != tile {
				t.Errorf("%v: %v loaded as %+v, saved %+v", c.key, cl, got.Gemm[cl], tile)
			}
		}
		for cl, v := range c.want.Kernels {
			if got.Kernels[cl] != v {
				t.Errorf("%v: %v loaded as %v, saved %v", c.key, cl, got.Kernels[cl], v)
			}
		}
	}
	foreign := key
	foreign.Adapter = "NVIDIA H100"
	if _, err := tune.Load(path, foreign); !errors.Is(err, tune.ErrNoEntry) {
		t.Errorf("a foreign adapter gave %v, want ErrNoEntry", err)
	}
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	format := fmt.Sprintf(`"format": %d`, tune.Format)
	if !strings.Contains(string(good), format) {
		t.Fatalf("the file lacks %s:\n%s", format, good)
	}
	for name, body := range map[string]string{
		"truncated":     string(good[:len(good)/2]),
		"next format":   strings.Replace(string(good), format, fmt.Sprintf(`"format": %d`, tune.Format+1), 1),
		"format 1":      strings.Replace(string(good), format, `"format": 1`, 1), // tiles before their variants
		"format 2":      strings.Replace(string(good), format, `"format": 2`, 1), // GEMM variants only
		"unknown field": strings.Replace(string(good), format, format+`, "extra": 0`, 1),
		"bad class":     strings.Replace(string(good), "dense-ta/m128-n256-k64", "dense-ta/m100-n256-k64", 1),
		"bad kernel":    strings.Replace(string(good), "batchnorm/256x16x256", "batchnorm/256x16x200", 1),
		"bad variant":   strings.Replace(string(good), `"serial": true`, `"serial": 1`, 1),
		"two objects":   string(good) + string(good),
		"not JSON":      "\x00\x01tune",
	} {
		bad := filepath.Join(dir, name+".json")
		if err := os.WriteFile(bad, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := tune.Load(bad, key); err == nil || errors.Is(err, tune.ErrNoEntry) || !strings.Contains(err.Error(), bad) {
			t.Errorf("%s: Load gave %v, want an error naming the file", name, err)
		}
	}
}

// fakeKernels gives each variant a fixed time per run, as fakeTimer does
// for tiles.
type fakeKernels struct {
	clock  *fakeClock
	perRun map[gpu.KernelVariant]time.Duration
}

func (f *fakeKernels) TimeKernel(c gpu.KernelCase, v gpu.KernelVariant, reps int) (time.Duration, error) {
	d, ok := f.perRun[v]
	if !ok {
		return 0, errors.New("pipeline refused")
	}
	f.clock.now = f.clock.now.Add(d * time.Duration(reps))
	return d * time.Duration(reps), nil
}

// TestKernelsChoosesFastest checks, for a case of every family, that the
// fake clock's fastest variant wins where it beats the built-in one by the
// margin and not otherwise, that a variant that fails is passed over, that
// a spent budget still times the built-in variant, and that Tuning and
// Summary carry the choices.
func TestKernelsChoosesFastest(t *testing.T) {
	bi := gpu.KernelVariant{Columns: shaders.Columns{BX: 32, BY: 8}}
	fast := gpu.KernelVariant{Columns: shaders.Columns{BX: 8, BY: 32}}
	near := gpu.KernelVariant{Columns: shaders.Columns{BX: 16, BY: 16}}
	broken := gpu.KernelVariant{Serial: true}
	var cases []gpu.KernelCase
	for i, f := range gpu.Families {
		cases = append(cases, gpu.KernelCase{Class: gpu.KernelClassOf(f, 64<<i, 3, 1), Dims: [3]int{64 << i, 3, 1}, Builtin: bi})
	}
	cands := func(c gpu.KernelCase) []gpu.KernelVariant { return []gpu.KernelVariant{c.Builtin, broken, near, fast} }
	for _, tc := range []struct {
		name   string
		times  map[gpu.KernelVariant]time.Duration
		budget time.Duration
		want   gpu.KernelVariant
		tried  int
	}{
		{"faster wins", map[gpu.KernelVariant]time.Duration{bi: time.Millisecond, near: 990 * time.Microsecond, fast: 500 * time.Microsecond}, time.Hour, fast, 4},
		{"within the margin", map[gpu.KernelVariant]time.Duration{bi: time.Millisecond, near: 990 * time.Microsecond, fast: 980 * time.Microsecond}, time.Hour, bi, 4},
		{"budget spent", map[gpu.KernelVariant]time.Duration{bi: time.Millisecond, near: 990 * time.Microsecond, fast: 500 * time.Microsecond}, time.Microsecond, bi, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clock := &fakeClock{}
			got, err := tune.Kernels(&fakeKernels{clock: clock, perRun: tc.times}, cases, cands, tune.Options{Clock: clock, Budget: tc.budget, Margin: 0.03})
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(cases) {
				t.Fatalf("%d choices for %d cases", len(got), len(cases))
			}
			for i, c := range got {
				if c.Case.Class != cases[i].Class || c.Variant != tc.want || c.Builtin != bi || c.Tried != tc.tried || c.Seconds > c.BuiltinSeconds {
					t.Errorf("%v: chose %v of %d tried (%g s, built-in %g s); want %v of %d", cases[i].Class, c.Variant, c.Tried, c.Seconds, c.BuiltinSeconds, tc.want, tc.tried)
				}
			}
			tuning := tune.Tuning(nil, got)
			if len(tuning.Kernels) != len(cases) || tuning.Kernels[cases[0].Class] != tc.want {
				t.Errorf("Tuning gave %v", tuning.Kernels)
			}
			if s, want := tune.Summary(tuning), "0 classes of product; kernels: elementwise 1, reduce 1, batchnorm 1, batchnorm-backward 1, loss-columns 1, loss-sum 1"; s != want {
				t.Errorf("Summary gave %q, want %q", s, want)
			}
		})
	}
	clock := &fakeClock{}
	if _, err := tune.Kernels(&fakeKernels{clock: clock, perRun: map[gpu.KernelVariant]time.Duration{fast: time.Millisecond}}, cases[:1], cands, tune.Options{Clock: clock}); err == nil || !strings.Contains(err.Error(), "built-in") {
		t.Errorf("a failing built-in variant gave %v, want an error naming it", err)
	}
}
