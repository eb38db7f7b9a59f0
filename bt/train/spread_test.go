package train

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/disttest"
	"github.com/bt-org/bt/internal/gputest"
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

func runSpread(d *gpu.Device, cfg Config, c dist.Comm) (spreadResult, error) {
	res := spreadResult{state: map[string][]float32{}}
	run, err := New(d, cfg, Options{Comm: c})
	if err != nil {
		return res, err
	}
	defer run.Release()
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

func rel(got, want []float32) float64 {
	var num, den float64
	for i := range got {
		d := float64(got[i]) - float64(want[i])
		num += d * d
		den += float64(want[i]) * float64(want[i])
	}
	if den == 0 {
		return math.Sqrt(num)
	}
	return math.Sqrt(num / den)
}

// TestSpreadEqualsOneProcess: 5 steps over 2 and 3 ranks of an in-process
// group, on both loss paths, with synchronised BatchNorm, end where one
// process with the same global batch ends: every loss and every tensor of
// the state dict (running statistics included) on every rank within 1e-4
// relative. Per-rank BatchNorm, a different model, must not.
func TestSpreadEqualsOneProcess(t *testing.T) {
	devs := gputest.Devices(t, 3)
	for _, path := range []loss.Path{loss.Fused, loss.Materialised} {
		cfg := spreadConfig(path)
		one, err := runSpread(devs[0], cfg, nil)
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
			t.Run(fmt.Sprintf("%s/%dranks/per-rank-bn=%v", path, tc.ranks, tc.perRank), func(t *testing.T) {
				c := cfg
				c.PerRankBatchNorm = tc.perRank
				res := make([]spreadResult, tc.ranks)
				err := disttest.Run(tc.ranks, func(comm dist.Comm) error {
					r, err := runSpread(devs[comm.Rank()], c, comm)
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
