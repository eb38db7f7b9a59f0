package train

import (
	"errors"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/pipeline"
)

// TestMemoryPlan sizes the paper's setting, ResNet-50 with an 8192³
// projector at batch 256: parameters from the architecture, and a clear
// error on an adapter whose binding limit or budget it exceeds, naming the
// largest batch that fits.
func TestMemoryPlan(t *testing.T) {
	mc := ModelConfig{Arch: "resnet50", InChannels: 3, Projector: "8192-8192-8192"}
	p, err := PlanMemory(Step{Model: mc, Batch: 256, Ranks: 1, Channels: 3, Height: 224, Width: 224, Loss: FusedLoss, Activations: gpu.F32, Optimizer: "lars"})
	if err != nil {
		t.Fatal(err)
	}
	// 23,508,032 backbone parameters; the projector 2048·8192 + 2·8192² +
	// 2·2·8192 (BatchNorm).
	if want := int64(23508032 + 2048*8192 + 2*8192*8192 + 4*8192); p.Params != want {
		t.Errorf("%d parameters, want %d", p.Params, want)
	}
	if p.Total < p.ParamBytes+p.Activations || p.Activations < 256*2*4*3*224*224 {
		t.Errorf("implausible plan: %v", p)
	}
	t.Log(p)
	d := gputest.Device(t)
	_, err = CheckMemory(d, resolvedFor(t, "imagenet", mc, 256), MemoryCheck{Ranks: 1, Loss: FusedLoss, Budget: 8 << 30})
	if !errors.Is(err, ErrMemory) || !strings.Contains(err.Error(), "largest batch that fits is") && !strings.Contains(err.Error(), "no batch") {
		t.Fatalf("ResNet-50 at batch 256 in 8 GiB: %v", err)
	}
	t.Log(err)
	small, err := CheckMemory(d, resolvedFor(t, "fashion-mnist", ModelConfig{Arch: "tiny", InChannels: 1, Projector: "512-512-512"}, 256), MemoryCheck{Ranks: 1, Loss: MaterialisedLoss})
	if err != nil {
		t.Fatalf("the demo's setting does not fit: %v", err)
	}
	// A predictor adds its two D×D layers and its BatchNorm.
	withPred, err := PlanMemory(Step{Model: ModelConfig{Arch: "tiny", InChannels: 1, Projector: "512-512-512", Predictor: true}, Batch: 256, Ranks: 1, Channels: 1, Height: 28, Width: 28, Loss: MaterialisedLoss, Activations: gpu.F32, Optimizer: "lars"})
	if err != nil {
		t.Fatal(err)
	}
	if d := withPred.Params - small.Params; d != 2*512*512+2*512 {
		t.Errorf("the predictor adds %d parameters, want %d", d, 2*512*512+2*512)
	}
	// Halving the batch must roughly halve the activations.
	half, _ := PlanMemory(Step{Model: ModelConfig{Arch: "tiny", InChannels: 1, Projector: "512-512-512"}, Batch: 128, Ranks: 1, Channels: 1, Height: 28, Width: 28, Loss: MaterialisedLoss, Activations: gpu.F32, Optimizer: "lars"})
	if r := float64(small.Activations) / float64(half.Activations); r < 1.9 || r > 2.1 {
		t.Errorf("activations at batch 256 are %.2f× those at 128", r)
	}
	// The loss's workspaces: C (D×D) when materialised, two N×N Gram
	// matrices when fused, and for InfoNCE four N×N matrices and four N×D
	// embeddings; at batch 8192 an N×N matrix alone is 256 MiB.
	tiny := ModelConfig{Arch: "tiny", InChannels: 1, Projector: "512-512-512"}
	const n, dim = 8192, 512
	plans := map[LossKind]MemoryPlan{}
	for _, k := range []LossKind{MaterialisedLoss, FusedLoss, InfoNCELoss} {
		if plans[k], err = PlanMemory(Step{Model: tiny, Batch: n, Ranks: 1, Channels: 1, Height: 28, Width: 28, Loss: k, Activations: gpu.F32, Optimizer: "lars"}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := plans[FusedLoss].Scratch-plans[MaterialisedLoss].Scratch, int64(2*4*n*n-4*dim*dim); got != want {
		t.Errorf("fused workspaces exceed materialised by %d bytes, want %d", got, want)
	}
	if got, want := plans[InfoNCELoss].Scratch-plans[FusedLoss].Scratch, int64(2*4*n*n+4*4*n*dim); got != want {
		t.Errorf("InfoNCE workspaces exceed fused by %d bytes, want %d", got, want)
	}
	for _, k := range []LossKind{FusedLoss, InfoNCELoss} {
		if plans[k].Largest < 4*n*n {
			t.Errorf("loss kind %d: largest tensor %d bytes, below an N×N matrix", k, plans[k].Largest)
		}
	}
}

// TestMemoryPlanRanks: over several ranks the network's passes are sized at
// each rank's share; gathering the embeddings puts the loss of the whole
// batch and the gathered embeddings with their gradients on every rank,
// while the all-reduce of C keeps only this rank's rows beside C.
func TestMemoryPlanRanks(t *testing.T) {
	tiny := ModelConfig{Arch: "tiny", InChannels: 1, Projector: "512-512-512"}
	const batch, ranks, emb = 1024, 4, 512
	const n = batch / ranks
	plan := func(b, r int, k LossKind) MemoryPlan {
		t.Helper()
		p, err := PlanMemory(Step{Model: tiny, Batch: b, Ranks: r, Channels: 1, Height: 28, Width: 28, Loss: k, Activations: gpu.F32, Optimizer: "lars"})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	one := plan(n, 1, MaterialisedLoss) // one process at the share
	for _, tc := range []struct {
		kind LossKind
		// extra is what the rank holds beyond one process at its share.
		extra int64
	}{
		{MaterialisedLoss, 2*4*(batch-n)*emb + 4*4*batch*emb},
		{FusedLoss, 2*4*batch*batch - 4*emb*emb + 2*4*(batch-n)*emb + 4*4*batch*emb},
		{ReducedCLoss, 2 * 4 * n * emb},
	} {
		p := plan(batch, ranks, tc.kind)
		if p.Batch != n || p.Activations != one.Activations {
			t.Errorf("kind %d: batch %d, activations %d; want the share's %d and %d", tc.kind, p.Batch, p.Activations, n, one.Activations)
		}
		if got := p.Scratch - one.Scratch; got != tc.extra {
			t.Errorf("kind %d: %d bytes of scratch beyond one process at the share, want %d", tc.kind, got, tc.extra)
		}
		if !strings.Contains(p.String(), "on each of 4 ranks") {
			t.Errorf("kind %d: %q does not name the ranks", tc.kind, p)
		}
	}
	if _, err := PlanMemory(Step{Model: tiny, Batch: 1022, Ranks: ranks, Channels: 1, Height: 28, Width: 28, Loss: FusedLoss, Activations: gpu.F32, Optimizer: "lars"}); err == nil {
		t.Error("a batch that does not divide among the ranks: no error")
	}
}

// TestMemoryPlanHalf: mixed precision halves the activations of the
// paper's setting (ResNet-50, 8192³ projector, batch 256), all but
// BatchNorm's statistics and max pooling's choices, and keeps the
// parameters' share.
func TestMemoryPlanHalf(t *testing.T) {
	mc := ModelConfig{Arch: "resnet50", InChannels: 3, Projector: "8192-8192-8192"}
	full, err := PlanMemory(Step{Model: mc, Batch: 256, Ranks: 1, Channels: 3, Height: 224, Width: 224, Loss: FusedLoss, Activations: gpu.F32, Optimizer: "lars"})
	if err != nil {
		t.Fatal(err)
	}
	half, err := PlanMemory(Step{Model: mc, Batch: 256, Ranks: 1, Channels: 3, Height: 224, Width: 224, Loss: FusedLoss, Activations: gpu.F16, Optimizer: "lars"})
	if err != nil {
		t.Fatal(err)
	}
	if r := float64(half.Activations) / float64(full.Activations); r < 0.5 || r > 0.52 {
		t.Errorf("f16 keeps %.3f of f32's activations, want just over a half", r)
	}
	if half.ParamBytes != full.ParamBytes || half.Total >= full.Total {
		t.Errorf("f16 plan %v against f32 %v", half, full)
	}
	t.Logf("f32: %v\nf16: %v", full, half)
}

// resolvedFor is DefaultConfig with model mc at batch, its views those of
// the preset given, resolved.
func resolvedFor(t *testing.T, preset pipeline.PresetName, mc ModelConfig, batch int) Resolved {
	t.Helper()
	c := DefaultConfig()
	c.Data.Augment, c.Model, c.Batch = preset, mc, batch
	rc, err := c.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	return rc
}
