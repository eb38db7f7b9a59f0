package train

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/disttest"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// spreadConfig is a small run whose batch of 24 divides among 2 and 3
// ranks. Its shape is well conditioned: with a batch of 12 and a 48-wide
// embedding, the materialised path's parameters moved by 0.5% between two
// correct BatchNorm1d kernels of one process (a ReLU flipping on rounding),
// which no comparison at 1e-4 survives.
func spreadConfig(path loss.Path) Config {
	cfg := DefaultConfig()
	cfg.Data.Name, cfg.Data.Size, cfg.Data.Workers = "synthetic", 16, 1
	cfg.Model.Projector = "32-32-16"
	cfg.Loss.Path = path
	cfg.Batch, cfg.Steps, cfg.Epochs = 24, 5, 10
	return cfg
}

// spreadResult is what a rank ends a run with: its losses and its state
// dict.
type spreadResult struct {
	losses []float32
	state  map[string][]float32
}

func runSpread(d *gpu.Device, cfg Config, c dist.Comm, ex Exchange) (spreadResult, error) {
	res := spreadResult{state: map[string][]float32{}}
	run, err := New(d, cfg, Options{Comm: c, Exchange: ex})
	if err != nil {
		return res, err
	}
	defer run.Release()
	// The test asks for Auto on the fused path only, which gathers.
	want := ex
	if ex == AutoExchange {
		want = Gather
	}
	if c != nil && run.Exchange != want {
		return res, fmt.Errorf("asked for exchange %q, the run took %q, want %q", ex, run.Exchange, want)
	}
	run.Loop.Hooks = append(run.Loop.Hooks, Hook{Name: "losses", Fn: func(_ *Loop, ev Event) error {
		res.losses = append(res.losses, ev.Loss)
		return nil
	}})
	if err := run.Loop.Execute(context.Background()); err != nil {
		return res, err
	}
	for _, nt := range run.Model.State() {
		v, err := nt.Tensor.Download()
		if err != nil {
			return res, err
		}
		res.state[nt.Name] = v
	}
	return res, nil
}

// rel is ref.RelErr of float32 values, infinite where they disagree on
// which are finite.
func rel(got, want []float32) float64 {
	r, err := ref.RelErr(kcheck.To64(got), kcheck.To64(want))
	if err != nil {
		return math.Inf(1)
	}
	return r
}

// TestSpreadEqualsOneProcess: 5 steps over 2 and 3 ranks of an in-process
// group, on both loss paths, gathering the embeddings and (materialised)
// all-reducing C, with synchronised BatchNorm, end where one process with
// the same global batch ends: every loss and every tensor of the state
// dict (running statistics included) on every rank within 1e-4 relative.
// Per-rank BatchNorm, a different model, must not.
func TestSpreadEqualsOneProcess(t *testing.T) {
	devs := gputest.Devices(t, 3)
	for _, pe := range []struct {
		path loss.Path
		ex   Exchange
	}{{loss.Fused, AutoExchange}, {loss.Materialised, Gather}, {loss.Materialised, ReduceC}} {
		path := pe.path
		cfg := spreadConfig(path)
		one, err := runSpread(devs[0], cfg, nil, AutoExchange)
		if err != nil {
			t.Fatal(err)
		}
		if len(one.losses) != cfg.Steps {
			t.Fatalf("one process: %d losses, want %d", len(one.losses), cfg.Steps)
		}
		for _, tc := range []struct {
			ranks   int
			perRank bool
		}{{2, false}, {3, false}, {2, true}} {
			t.Run(fmt.Sprintf("%s/%s/%dranks/per-rank-bn=%v", path, pe.ex, tc.ranks, tc.perRank), func(t *testing.T) {
				c := cfg
				c.PerRankBatchNorm = tc.perRank
				res := make([]spreadResult, tc.ranks)
				err := disttest.Run(tc.ranks, func(comm dist.Comm) error {
					r, err := runSpread(devs[comm.Rank()], c, comm, pe.ex)
					res[comm.Rank()] = r
					return err
				})
				if err != nil {
					t.Fatal(err)
				}
				worst := 0.0
				for q, r := range res {
					if len(r.losses) != len(one.losses) {
						t.Fatalf("rank %d: %d losses, want %d", q, len(r.losses), len(one.losses))
					}
					worst = max(worst, rel(r.losses, one.losses))
					for name, want := range one.state {
						worst = max(worst, rel(r.state[name], want))
					}
				}
				t.Logf("largest relative difference from one process: %.3g", worst)
				if tc.perRank {
					if worst < 1e-3 {
						t.Errorf("per-rank BatchNorm trains the same model as one process (difference %.3g): the statistics are not per rank", worst)
					}
					return
				}
				for q, r := range res {
					if d := rel(r.losses, one.losses); d > 1e-4 {
						t.Errorf("rank %d: losses %v, one process %v (relative %.3g)", q, r.losses, one.losses, d)
					}
					for name, want := range one.state {
						if d := rel(r.state[name], want); d > 1e-4 {
							var maxAbs, maxW float64
							for i := range want {
								maxAbs = max(maxAbs, math.Abs(float64(r.state[name][i])-float64(want[i])))
								maxW = max(maxW, math.Abs(float64(want[i])))
							}
							t.Errorf("rank %d: %s differs from one process's by %.3g relative (largest |difference| %.3g, largest |value| %.3g)", q, name, d, maxAbs, maxW)
						}
					}
				}
			})
		}
	}
}

// TestChooseExchange: by bytes where both exchanges serve the loss, the
// gather where only it does, and errors for what cannot be had.
func TestChooseExchange(t *testing.T) {
	d := gputest.Device(t)
	for _, tc := range []struct {
		name      string
		batch     int
		projector Projector
		ranks     int
		edit      func(*Config)
		asked     Exchange
		want      Exchange
		err       string
	}{
		// The paper's shape: 2·2048·8192 values gathered against 8192².
		{"paper", 2048, "8192-8192-8192", 32, nil, AutoExchange, Gather, ""},
		{"batch above the width", 4096, "64-64-1024", 8, nil, AutoExchange, ReduceC, ""},
		{"asked to gather", 4096, "64-64-1024", 8, nil, Gather, Gather, ""},
		{"asked for C", 256, "64-64-1024", 2, nil, ReduceC, ReduceC, ""},
		{"auto where gathering is less", 256, "64-64-1024", 2, nil, AutoExchange, Gather, ""},
		{"fused path", 4096, "64-64-1024", 8, func(c *Config) { c.Loss.Path = loss.Fused }, AutoExchange, Gather, ""},
		{"fused path, asked for C", 4096, "64-64-1024", 8, func(c *Config) { c.Loss.Path = loss.Fused }, ReduceC, "", "fused path"},
		{"feature norm", 4096, "64-64-1024", 8, func(c *Config) { c.Loss.Norm = loss.FeatureNorm }, ReduceC, "", "feature normalisation"},
		{"InfoNCE", 4096, "64-64-1024", 8, func(c *Config) { c.InfoNCE = 0.1 }, AutoExchange, Gather, ""},
		{"one process", 256, "64-64-1024", 1, nil, AutoExchange, AutoExchange, ""},
		{"one process, asked", 256, "64-64-1024", 1, nil, Gather, "", "one process"},
		{"unknown", 256, "64-64-1024", 2, nil, "broadcast", "", "want"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := DefaultConfig()
			cfg.Batch, cfg.Model.Projector = tc.batch, tc.projector
			if tc.edit != nil {
				tc.edit(&cfg)
			}
			rc, err := cfg.Resolve()
			if err != nil {
				t.Fatal(err)
			}
			got, err := ChooseExchange(d, rc, tc.ranks, tc.asked)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %q, %v; want an error saying %q", got, err, tc.err)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Errorf("got %q, %v; want %q", got, err, tc.want)
			}
		})
	}
	// C's 256 MiB, its diagonal's sums, and the normalisation's
	// statistics gathered from 32 ranks (4 MiB) and gradients' sums.
	gather, reduce := ExchangeBytes(2048, 8192, 32)
	if want := int64(4 * (8192*8192 + 8192 + 4*8192*32 + 4*8192)); gather != 128<<20 || reduce != want {
		t.Errorf("the paper's shape: %d bytes gathered, %d all-reduced; want %d and %d", gather, reduce, 128<<20, want)
	}
	// Where C cannot be bound, asking for its all-reduce is an error.
	cfg := DefaultConfig()
	cfg.Batch, cfg.Model.Projector = 2048, "8192-8192-8192"
	rc, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ChooseExchange(d, rc, 32, ReduceC)
	if limit := min(d.Limits.MaxStorageBufferBindingSize, d.Limits.MaxBufferSize); limit < 4*8192*8192 {
		if err == nil || !strings.Contains(err.Error(), "cannot be bound") {
			t.Errorf("C of 256 MiB on %s (binding limit %d MiB): got %q, %v; want an error", d.Info.Name, limit>>20, got, err)
		}
	} else if err != nil || got != ReduceC {
		t.Errorf("C of 256 MiB on %s: got %q, %v; want %q", d.Info.Name, got, err, ReduceC)
	}
}

// TestMixedPrecision: 5 steps with f16 activations track the same 5 steps
// in f32: the losses within 1e-3 relative, and the whole state dict, as one
// vector, within 1e-3 (measured 2026-12-01: 2.6e-4 and 5e-5). Tensors
// that start at zero (BatchNorm's β, the residual branches' last γ) are
// within 2–17% of their small f32 values: their sums of f16 gradients
// over the batch cancel, as any f16 storage of gradients makes them. The
// two must not be equal, or the activations were not stored as f16.
func TestMixedPrecision(t *testing.T) {
	d := gputest.Device(t)
	gputest.NeedF16(t, d)
	cfg := spreadConfig(loss.Materialised)
	full, err := runSpread(d, cfg, nil, AutoExchange)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Precision = F16
	half, err := runSpread(d, cfg, nil, AutoExchange)
	if err != nil {
		t.Fatal(err)
	}
	var got, want []float32
	for name, w := range full.state {
		got, want = append(got, half.state[name]...), append(want, w...)
	}
	state, losses := rel(got, want), rel(half.losses, full.losses)
	t.Logf("losses %v (f32 %v), relative %.3g; the state %.3g", half.losses, full.losses, losses, state)
	if losses > 1e-3 || state > 1e-3 {
		t.Errorf("f16 activations: losses differ from f32 by %.3g, the state by %.3g relative", losses, state)
	}
	if state == 0 {
		t.Error("f16 activations trained exactly as f32: were they stored in f16?")
	}
}

// TestLossScaleExact: in f32 a loss scale of 2¹⁰ scales every gradient by
// a power of two on the way in and back on the way out, which float
// arithmetic carries out exactly, so 5 steps end bit for bit where they
// end without it: nothing is scaled twice or left scaled.
func TestLossScaleExact(t *testing.T) {
	d := gputest.Device(t)
	cfg := spreadConfig(loss.Materialised)
	plain, err := runSpread(d, cfg, nil, AutoExchange)
	if err != nil {
		t.Fatal(err)
	}
	cfg.LossScale = 1024
	scaled, err := runSpread(d, cfg, nil, AutoExchange)
	if err != nil {
		t.Fatal(err)
	}
	for name, want := range plain.state {
		if d := rel(scaled.state[name], want); d != 0 {
			t.Errorf("%s differs by %.3g relative with a loss scale of 1024", name, d)
		}
	}
	if d := rel(scaled.losses, plain.losses); d != 0 {
		t.Errorf("losses differ by %.3g relative with a loss scale of 1024", d)
	}
}
