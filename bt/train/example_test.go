package train_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/bt-org/bt/bt/eval"
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

// A run that leaves what bt pretrain leaves in its directory: config.json
// and run.json, checkpoints, metrics.jsonl with a row per step (kNN
// figures at the steps the monitor ran), the curves and the heat maps of
// C, a Watch's warnings in the rows. README.md's "Use bt from Go" shows
// this program.
func ExampleRecorder() {
	d, err := gpu.Open(gpu.Options{})
	if err != nil {
		log.Fatal(err)
	}
	defer d.Release()
	cfg := train.DefaultConfig()
	cfg.Data.Name, cfg.Data.Size = "synthetic", 16
	cfg.Model.Projector = "16-16-16"
	cfg.Batch, cfg.Steps = 16, 4
	dir, err := os.MkdirTemp("", "bt-example-recorder")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)

	keep := train.Keeping{CheckpointEvery: 2, Keep: train.DefaultKeep, KNNEvery: 2, KNNImages: 40}
	run, err := train.New(d, cfg, train.Options{CheckpointDir: dir, CheckpointEvery: keep.CheckpointEvery, Keep: keep.Keep})
	if err != nil {
		log.Fatal(err)
	}
	defer run.Release()
	if err := run.WriteSettings(dir, keep); err != nil {
		log.Fatal(err)
	}
	rec, err := train.NewRecorder(run, dir)
	if err != nil {
		log.Fatal(err)
	}
	rec.Watch = train.NewWatch(func(w train.Warning) { log.Print(w) })
	knn := eval.Monitor{Every: keep.KNNEvery, TrainImages: keep.KNNImages, Report: func(step int, acc []float64) error {
		rec.KNN(step, acc)
		return nil
	}}
	run.Loop.Hooks = append([]train.Hook{rec.Watch.Hook(), knn.Hook(d, run)}, rec.Hooks()...)
	if err := rec.Finish(run.Loop.Execute(context.Background())); err != nil {
		log.Fatal(err)
	}

	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	for i, f := range files {
		files[i] = filepath.Base(f)
	}
	fmt.Println(files)
	m, err := os.Open(filepath.Join(dir, train.MetricsFile))
	if err != nil {
		log.Fatal(err)
	}
	defer m.Close()
	for rows := bufio.NewScanner(m); rows.Scan(); {
		var row map[string]any
		if err := json.Unmarshal(rows.Bytes(), &row); err != nil {
			log.Fatal(err)
		}
		fmt.Println(slices.Sorted(maps.Keys(row)))
	}
	// Output:
	// [c_end.png c_start.png checkpoint-2.safetensors checkpoint-4.safetensors checkpoint.safetensors config.json knn.png loss.png lr.png metrics.jsonl run.json]
	// [bad_images device_bytes elapsed_s epoch invariance loss lr_biases lr_weights mean_abs_c_ij mean_c_ii pairs_per_s redundancy rms_c_ij rss_bytes step z_std_mean z_std_min]
	// [bad_images device_bytes elapsed_s epoch invariance knn20 knn200 loss lr_biases lr_weights mean_abs_c_ij mean_c_ii pairs_per_s redundancy rms_c_ij rss_bytes step z_std_mean z_std_min]
	// [bad_images device_bytes elapsed_s epoch invariance loss lr_biases lr_weights mean_abs_c_ij mean_c_ii pairs_per_s redundancy rms_c_ij rss_bytes step z_std_mean z_std_min]
	// [bad_images device_bytes elapsed_s epoch invariance knn20 knn200 loss lr_biases lr_weights mean_abs_c_ij mean_c_ii pairs_per_s redundancy rms_c_ij rss_bytes step z_std_mean z_std_min]
}
