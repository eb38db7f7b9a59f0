package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/bt-org/bt/bt/eval"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/pipeline"
)

// demoOptions size a demo run; zero fields take the adapter's defaults.
type demoOptions struct {
	out                 string
	namedOut, overwrite bool // -out given; replace the run there
	steps, batch        int
	evalTrain, evalTest int
	data                string
	recipe              train.Recipe // "" for short
}

func runDemo(args []string) error {
	fs, adapter := newFlags("demo", "The whole job on whatever adapter there is: pretrain the tiny ResNet with Barlow Twins on Fashion-MNIST\n(the synthetic set when it is not installed), then evaluate it and a randomly initialised twin with kNN and a linear probe.")
	var o demoOptions
	fs.StringVar(&o.out, "out", "runs/demo", "run directory (default: runs/demo, or the next free runs/demo-N)")
	fs.BoolVar(&o.overwrite, "overwrite", false, "replace the run in -out")
	fs.IntVar(&o.steps, "steps", 0, "pretraining steps (default: 150 on a CPU adapter, 3000 on a GPU)")
	fs.IntVar(&o.batch, "batch", 0, "batch size (default: 128 on a CPU adapter, 256 on a GPU)")
	fs.IntVar(&o.evalTrain, "eval-train", 0, "training images for evaluation (default: 10000 on a CPU adapter, all on a GPU)")
	fs.IntVar(&o.evalTest, "eval-test", 0, "test images for evaluation (default: 2000 on a CPU adapter, all on a GPU)")
	fs.StringVar(&o.data, "data", "", "dataset (default: fashion-mnist if installed, else synthetic)")
	var tuning tuneSource
	tuning.register(fs)
	fs.Var(choiceFlag[train.Recipe]{&o.recipe, append([]train.Recipe{""}, train.Recipes()...)}, "recipe", "optimisation recipe: short (the best of docs/quality.md's sweep at a few epochs: train.Recipes) or paper (the official, tuned for 1000 epochs) (default: short)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: demo takes only flags", fs.Arg(0))
	}
	fs.Visit(func(f *flag.Flag) { o.namedOut = o.namedOut || f.Name == "out" })
	for _, f := range []struct {
		name string
		v    int
	}{{"steps", o.steps}, {"batch", o.batch}, {"eval-train", o.evalTrain}, {"eval-test", o.evalTest}} {
		if f.v < 0 {
			return fmt.Errorf("-%s %d: must be 0 (the adapter's default) or more", f.name, f.v)
		}
	}
	d, err := openDevice(*adapter)
	if err != nil {
		return err
	}
	defer d.Release()
	if err := tuning.apply(d, os.Stderr); err != nil {
		return err
	}
	table, _, _, err := demo(d, o)
	if err != nil {
		return err
	}
	fmt.Println(table)
	return nil
}

// demo pretrains, evaluates the pretrained and a random backbone, writes
// results.md and returns its table with both evaluations.
func demo(d *gpu.Device, o demoOptions) (string, eval.Result, eval.Result, error) {
	cpu := d.IsCPU()
	pick := func(v *int, onCPU, onGPU int) {
		if *v == 0 {
			*v = onGPU
			if cpu {
				*v = onCPU
			}
		}
	}
	pick(&o.steps, 150, 3000)
	pick(&o.batch, 128, 256)
	pick(&o.evalTrain, 10000, 0)
	pick(&o.evalTest, 2000, 0)

	// A demo is a short budgeted run: the short recipe unless told
	// otherwise.
	cfg, recipe := recipeConfig(o.recipe, true)
	cfg.Data.Name = o.data
	if cfg.Data.Name == "" {
		cfg.Data.Name = "fashion-mnist"
		if _, err := pipeline.Open("fashion-mnist", "", "train"); err != nil {
			fmt.Fprintf(os.Stderr, "Fashion-MNIST is not installed (apt-get install -y dataset-fashion-mnist); using the synthetic set\n")
			cfg.Data.Name = "synthetic"
		}
	}
	cfg.Batch, cfg.Steps = o.batch, o.steps
	eo := eval.Options{TrainImages: o.evalTrain, TestImages: o.evalTest, Batch: 512, Probe: eval.DefaultProbeConfig()}
	eo.Probe.Epochs = 30

	start := time.Now()
	fmt.Fprintf(os.Stderr, "== pretraining (%d steps of %d pairs, the %s recipe)\n", cfg.Steps, cfg.Batch, recipe)
	ro := runOptions{out: o.out, auto: !o.namedOut && !o.overwrite, overwrite: o.overwrite, keep: 1}
	res, err := pretrain(context.Background(), d, cfg, ro, os.Stderr)
	if err != nil {
		return "", eval.Result{}, eval.Result{}, err
	}
	defer res.release()
	fmt.Fprintf(os.Stderr, "== evaluating the pretrained backbone\n")
	eo.Seed = res.cfg.Seed
	pre, err := eval.Evaluate(d, res.run.Model, res.cfg.Data, eo)
	if err != nil {
		return "", pre, eval.Result{}, err
	}
	fmt.Fprintf(os.Stderr, "== evaluating a randomly initialised backbone\n")
	random, err := train.NewModel(d, res.run.Model.Config)
	if err != nil {
		return "", pre, eval.Result{}, err
	}
	defer random.Release()
	base, err := eval.Evaluate(d, random, res.cfg.Data, eo)
	if err != nil {
		return "", pre, base, err
	}
	table := demoTable(d, res, recipe, pre, base, eo, time.Since(start))
	if err := res.owner.Record("results.md"); err != nil {
		return "", pre, base, err
	}
	return table, pre, base, os.WriteFile(filepath.Join(res.dir, "results.md"), []byte(table), 0o644)
}

func demoTable(d *gpu.Device, res *pretrainResult, recipe train.Recipe, pre, base eval.Result, eo eval.Options, took time.Duration) string {
	var b strings.Builder
	cfg := res.cfg
	fmt.Fprintf(&b, "\n## bt demo: Barlow Twins on %s\n\n", cfg.Data.Name)
	fmt.Fprintf(&b, "- adapter: %s\n", d.Info)
	fmt.Fprintf(&b, "- pretraining: %s, projector %s, batch %d, the %s recipe, %d steps in %s (%.1f pairs/s), loss %.1f → %.1f\n",
		cfg.Model.Arch, cfg.Model.Projector, cfg.Batch, recipe, res.steps, res.elapsed.Round(time.Second), res.pairsPerS, res.lossStart, res.lossEnd)
	fmt.Fprintf(&b, "- evaluation, on the test split: %s train / %s test images, frozen representations; linear probe %d epochs\n\n",
		countOrAll(eo.TrainImages), countOrAll(eo.TestImages), eo.Probe.Epochs)
	fmt.Fprintf(&b, "| backbone | kNN k=20 | kNN k=200 | linear top-1 | linear top-5 |\n|---|---|---|---|---|\n")
	row := func(name string, r eval.Result) {
		fmt.Fprintf(&b, "| %s | %.1f%% | %.1f%% | %.1f%% | %.1f%% |\n", name, 100*r.KNN[0], 100*r.KNN[1], 100*r.Linear.Top1, 100*r.Linear.Top5)
	}
	row("Barlow Twins (pretrained)", pre)
	row("random initialisation", base)
	fmt.Fprintf(&b, "\nFiles in %s: checkpoint.safetensors, metrics.jsonl, loss.png, c_start.png, c_end.png, results.md. Whole demo: %s.\n",
		res.dir, took.Round(time.Second))
	return b.String()
}

func countOrAll(n int) string {
	if n == 0 {
		return "all"
	}
	return fmt.Sprint(n)
}
