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
	t1 := gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{c1: faster, c2: {BM: 16, TM: 16, BN: 64, TN: 8, BK: 8, Direct: true, SplitK: 64},
		c3: {BM: 64, BN: 64, BK: 16, TM: 4, TN: 4, Double: true, Pad: 4, Vec4: true}}}
	t2 := gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{c1: slower}}
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
		if len(got.Gemm) != len(c.want.Gemm) {
			t.Fatalf("%v: loaded %v, saved %v", c.key, got, c.want)
		}
		for cl, tile := range c.want.Gemm {
			if got.Gemm[cl] != tile {
				t.Errorf("%v: %v loaded as %+v, saved %+v", c.key, cl, got.Gemm[cl], tile)
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
		"unknown field": strings.Replace(string(good), format, format+`, "extra": 0`, 1),
		"bad class":     strings.Replace(string(good), "dense-ta/m128-n256-k64", "dense-ta/m100-n256-k64", 1),
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
