package train_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
)

// A run from the paper's recipe, made small: synthetic CIFAR-sized data,
// the tiny ResNet, four steps, checkpoints in a directory, a hook that
// logs, and a context that could stop it (the CLI's Ctrl-C).
func Example() {
	d, err := gpu.Open(gpu.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Release()
	cfg := train.DefaultConfig()
	cfg.Data.Name, cfg.Data.Size = "synthetic", 16
	cfg.Model.Projector = "64-64-64"
	cfg.Batch, cfg.Steps = 16, 4
	dir, err := os.MkdirTemp("", "bt-example-run")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	run, err := train.New(d, cfg, train.Options{CheckpointDir: dir, CheckpointEvery: 2})
	if err != nil {
		log.Fatal(err)
	}
	defer run.Release()
	steps := 0
	run.Loop.Hooks = append(run.Loop.Hooks, train.Hook{Name: "count", Fn: func(_ *train.Loop, ev train.Event) error {
		steps++
		return nil
	}})
	if err := run.Loop.Execute(context.Background()); err != nil {
		log.Fatal(err)
	}
	c, err := train.LoadCheckpoint(dir + "/" + train.Latest)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d steps; the latest checkpoint is at step %d of a %s with %d-channel input\n", steps, c.State.Step, c.Model.Arch, c.Model.InChannels)
	// Output: 4 steps; the latest checkpoint is at step 4 of a tiny with 3-channel input
}

// A run with a step budget starts from the short recipe; the paper's is
// one call away, and settings changed after either adjust it.
func ExampleConfig_UseRecipe() {
	cfg := train.DefaultConfig()
	if err := cfg.UseRecipe("short"); err != nil {
		log.Fatal(err)
	}
	cfg.Steps = 703
	fmt.Printf("short: rate ×%g, warm-up %v, crops from %g\n", cfg.Schedule.Multiplier, cfg.Schedule.Warmup, cfg.Data.CropMin)
	if err := cfg.UseRecipe("paper"); err != nil {
		log.Fatal(err)
	}
	fmt.Printf("paper: rate ×%g, warm-up %v epochs\n", cfg.Schedule.Multiplier, cfg.Schedule.Warmup)
	fmt.Println(train.Recipes())
	// Output:
	// short: rate ×32, warm-up 5%, crops from 0.4
	// paper: rate ×1, warm-up 10 epochs
	// [paper short]
}

// A Watch installed on a run's loop warns of a run that is collapsing or
// diverging; here it is fed the figures of a run whose mean C_ii falls
// from 0.8 to 0.3, as a Loop would, step by step.
func ExampleWatch() {
	w := train.NewWatch(func(x train.Warning) { fmt.Println(x.Alarm, "at step", x.Step+1) })
	// run.Loop.Hooks = append([]train.Hook{w.Hook()}, run.Loop.Hooks...)
	for step := range 100 {
		diag := float32(0.8)
		if step >= 50 {
			diag = 0.3
		}
		w.Observe(train.Event{Step: step, Terms: &loss.Stats{MeanDiag: diag, RMSOff: 0.05}})
	}
	fmt.Println("holding at the end:", w.Active())
	// Output:
	// diagonal-fall at step 60
	// holding at the end: [diagonal-fall]
}
