package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image/color"
	"io/fs"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"

	"github.com/bt-org/bt/bench"
	"github.com/bt-org/bt/bt/eval"
	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/pipeline"
)

// variant is one run of an ablation grid: a change to the pretraining
// settings and the paper's ImageNet figure for it, where the paper gives
// one (linear top-1 after 300 epochs; see shared/PAPER.md).
type variant struct {
	name  string
	paper string
	apply func(c *train.Config)
}

// families are the ablations of the paper that bt can run. Baselines use
// the family's defaults; every family shares the budget flags.
var families = map[string][]variant{
	"lambda": {
		{"λ 0.0005", "", func(c *train.Config) { c.Loss.Lambda = 0.0005 }},
		{"λ 0.002", "flat between 0.002 and 0.02", func(c *train.Config) { c.Loss.Lambda = 0.002 }},
		{"λ 0.0051", "71.4 (baseline)", func(c *train.Config) { c.Loss.Lambda = 0.0051 }},
		{"λ 0.02", "flat between 0.002 and 0.02", func(c *train.Config) { c.Loss.Lambda = 0.02 }},
		{"λ 0.1", "", func(c *train.Config) { c.Loss.Lambda = 0.1 }},
	},
	"projector": {
		{"width 16", "", func(c *train.Config) { c.Model.Projector = "16-16-16" }},
		{"width 64", "", func(c *train.Config) { c.Model.Projector = "64-64-64" }},
		{"width 256", "", func(c *train.Config) { c.Model.Projector = "256-256-256" }},
		{"width 1024", "", func(c *train.Config) { c.Model.Projector = "1024-1024-1024" }},
		{"width 4096", "", func(c *train.Config) { c.Model.Projector = "4096-4096-4096" }},
		{"width 16384", "rises with width up to 16384", func(c *train.Config) { c.Model.Projector = "16384-16384-16384" }},
		{"depth 1", "", func(c *train.Config) { c.Model.Projector = "512" }},
		{"depth 2", "", func(c *train.Config) { c.Model.Projector = "512-512" }},
		{"depth 3", "saturates at 3 layers", func(c *train.Config) { c.Model.Projector = "512-512-512" }},
		{"depth 4", "", func(c *train.Config) { c.Model.Projector = "512-512-512-512" }},
	},
	// The paper's batch study trains every batch size for the same number
	// of epochs and sets the weights' learning rate per batch size (0.7 at
	// 128 … 0.2 at 2048 and 4096); smaller batches keep 0.7.
	"batch": {
		batchVariant(32, 0.7, ""),
		batchVariant(64, 0.7, ""),
		batchVariant(128, 0.7, "69.7"),
		batchVariant(256, 0.4, "70.7"),
		batchVariant(512, 0.3, "71.4"),
		batchVariant(1024, 0.25, "71.7"),
		batchVariant(2048, 0.2, "71.4"),
		batchVariant(4096, 0.2, "70.7"),
	},
	"augment": {
		{"all (paper)", "71.4 (baseline)", func(c *train.Config) {}},
		{"no grayscale, no colour jitter", "lower", func(c *train.Config) { c.Data.Without = "no-color" }},
		{"crop + blur only", "lower", func(c *train.Config) { c.Data.Without = "crop+blur" }},
		{"crop only", "lowest", func(c *train.Config) { c.Data.Without = "crop" }},
	},
	"loss": {
		{"baseline", "71.4", func(c *train.Config) {}},
		{"invariance term only (λ 0)", "57.3", func(c *train.Config) { c.Loss.Lambda = 0 }},
		{"redundancy term only", "0.1", func(c *train.Config) { c.Loss.RedundancyOnly = true }},
		{"normalisation along the feature dimension", "69.8", func(c *train.Config) { c.Loss.Norm = loss.FeatureNorm }},
		{"no BN in the projector", "71.2", func(c *train.Config) { c.Model.NoBN = true }},
		{"no BN and no normalisation", "53.4", func(c *train.Config) { c.Model.NoBN, c.Loss.Norm = true, loss.NoNorm }},
		{"cross-entropy with temperature (InfoNCE, τ 0.1)", "63.3", func(c *train.Config) { c.InfoNCE = 0.1 }},
	},
	"asymmetry": {
		{"symmetric (baseline)", "71.4", func(c *train.Config) {}},
		{"stop-gradient on one branch", "70.5", func(c *train.Config) { c.StopGradient = true }},
		{"predictor on one branch", "70.2", func(c *train.Config) { c.Model.Predictor = true }},
		{"predictor and stop-gradient", "61.3", func(c *train.Config) { c.Model.Predictor, c.StopGradient = true, true }},
	},
}

// sweeps are the families of the short-budget sweep (issue 14,
// docs/quality.md): the paper's recipe is tuned for 1000 epochs, users of
// one GPU run tens. Each varies one setting around the run's own recipe
// (the flags given), the paper's choice marked; the paper has no figure
// for them at short budgets.
var sweeps = map[string]bool{"optimizer": true, "lr": true, "warmup": true, "augment-strength": true, "width-lambda": true}

func init() {
	// SGD and AdamW apply the rate to raw gradients, not to LARS's
	// trust-ratio-scaled ones, so their rates are orders of magnitude
	// lower, biases and BatchNorm at the weights' rate. They are set
	// outright (the peak rate at batch 256, scaled by batch/256 like
	// LARS's), not as shares of the flags' -lr: the sweep's centre takes
	// LARS's best multiplier, which says nothing of theirs.
	opt := func(name string, rate float64) variant {
		return variant{fmt.Sprintf("%s, rate %g", name, rate), "", func(c *train.Config) {
			c.Optimizer, c.Schedule.Multiplier, c.Schedule.Weights, c.Schedule.Vectors = optim.Kind(strings.ToLower(name)), 1, rate, rate
		}}
	}
	families["optimizer"] = []variant{
		{"LARS", "the paper's", func(c *train.Config) { c.Optimizer = "lars" }},
		opt("SGD", 0.001), opt("SGD", 0.004), opt("SGD", 0.016),
		opt("AdamW", 0.0005), opt("AdamW", 0.001), opt("AdamW", 0.002), opt("AdamW", 0.004),
	}
	for _, m := range []float64{0.5, 1, 2, 4, 8, 16, 32} {
		paper := map[float64]string{1: "the paper's"}[m]
		families["lr"] = append(families["lr"], variant{fmt.Sprintf("lr ×%g", m), paper, func(c *train.Config) { c.Schedule.Multiplier = m }})
	}
	// A share of the run is given as that share of the schedule's epochs,
	// which a step budget compresses alike: the same warm-up, and at the
	// flags' own share (1 of 10 epochs) the same configuration, which
	// -reuse then finds.
	for _, f := range []float64{0, 0.01, 0.05, 0.1, 0.2, 0.3} {
		paper := map[float64]string{0.01: "the paper's (10 of 1000 epochs)", 0.1: "the demo's (1 of 10 epochs)"}[f]
		families["warmup"] = append(families["warmup"], variant{fmt.Sprintf("warm-up %g%%", 100*f), paper, func(c *train.Config) {
			c.Schedule.Warmup = optim.Warmup{Value: f * float64(c.Epochs), Unit: optim.WarmupEpochs}
		}})
	}
	families["augment-strength"] = []variant{
		{"crop 0.08–1, jitter ×1", "the paper's", func(c *train.Config) { c.Data.CropMin, c.Data.Jitter = 0.08, 1 }},
		{"crop 0.2–1", "", func(c *train.Config) { c.Data.CropMin, c.Data.Jitter = 0.2, 1 }},
		{"crop 0.4–1", "", func(c *train.Config) { c.Data.CropMin, c.Data.Jitter = 0.4, 1 }},
		{"jitter ×0.5", "", func(c *train.Config) { c.Data.CropMin, c.Data.Jitter = 0.08, 0.5 }},
		{"jitter ×1.5", "", func(c *train.Config) { c.Data.CropMin, c.Data.Jitter = 0.08, 1.5 }},
	}
	// λ ≈ 1/D: the heuristic for other widths (PAPER.md) beside the
	// paper's λ, which it tuned at D = 8192.
	for _, w := range []int{256, 1024, 4096} {
		proj := train.Projector(fmt.Sprintf("%d-%d-%d", w, w, w))
		families["width-lambda"] = append(families["width-lambda"],
			variant{fmt.Sprintf("width %d, λ 0.0051", w), "", func(c *train.Config) { c.Model.Projector, c.Loss.Lambda = proj, 0.0051 }},
			variant{fmt.Sprintf("width %d, λ 1/%d", w, w), "", func(c *train.Config) { c.Model.Projector, c.Loss.Lambda = proj, float32(1/float64(w)) }})
	}
}

// batchVariant runs batch size n with the weights' learning rate lr. The
// step budget is read as steps at the base batch size and rescaled so that
// every variant sees the same number of pairs, as the paper's equal-epoch
// comparison does; otherwise larger batches would win by seeing more data.
func batchVariant(n int, lr float64, paper string) variant {
	return variant{fmt.Sprintf("batch %d", n), paper, func(c *train.Config) {
		pairs := c.Steps * c.Batch
		c.Batch, c.Schedule.Weights = n, lr
		c.Steps = max(1, (pairs+n-1)/n)
	}}
}

func familyNames() string {
	var names []string
	for n := range families {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// ablationResult is one finished run, saved beside it so that a rerun
// skips it.
type ablationResult struct {
	Variant  string  `json:"variant"`
	Paper    string  `json:"paper"`
	Steps    int     `json:"steps"`
	Diverged string  `json:"diverged,omitempty"`
	Unfit    string  `json:"does_not_fit,omitempty"`
	LossEnd  float64 `json:"loss_end"`
	KNN20    float64 `json:"knn20"`
	KNN200   float64 `json:"knn200"`
	Linear   float64 `json:"linear_top1"`
	// Split is the split the figures are on: validation, or test ("" in
	// results saved before the validation split existed, which are on
	// test).
	Split   string  `json:"split,omitempty"`
	Seconds float64 `json:"seconds"`
	// Fingerprint identifies what decided the figures (fingerprint);
	// SameAs names the run directory, relative to -reuse's, they were
	// taken from when -reuse found a run with the same fingerprint, under
	// another variant's name.
	Fingerprint string `json:"fingerprint,omitempty"`
	SameAs      string `json:"same_as,omitempty"`
	// ResumedFrom is the step an interrupted run of this variant was
	// continued from (its Seconds are the continuation's).
	ResumedFrom int `json:"resumed_from,omitempty"`
}

// ablateOptions are bt ablate's flags beside the training configuration.
type ablateOptions struct {
	adapter          *string
	tune             tuneSource
	recipe           train.Recipe
	out, only, reuse string
	list             bool
	every            int // -checkpoint-every
	minutes          float64
	eo               eval.Options
}

// ablateFlags is bt ablate's flag set over cfg and o.
func ablateFlags(cfg *train.Config, o *ablateOptions) *flag.FlagSet {
	fs, adapter := newFlags("ablate", "Runs one of the paper's ablation studies, or one setting of the short-budget sweep, as a grid of short\npretraining runs around the flags' recipe, evaluates each with kNN and the fast linear probe, and writes a\ntable (ablation.md) and a plot (ablation.png) into -out.\n\nUsage: bt ablate [flags] FAMILY   (FAMILY: "+familyNames()+")")
	o.adapter = adapter
	setGroups(fs, registerConfig(fs, cfg, &o.recipe))
	fs.StringVar(&o.out, "out", "", "run directory (default runs/ablate-FAMILY)")
	fs.StringVar(&o.only, "only", "", "comma-separated variant numbers (1-based) to run, e.g. 1,3; default all")
	fs.BoolVar(&o.list, "list", false, "print the family's variants, one a line and numbered as -only takes them, and run nothing")
	fs.StringVar(&o.reuse, "reuse", "", "a directory of earlier grids (e.g. runs): a variant whose configuration and evaluation one of their runs already has (augmentation settings compared by the views they make) takes that run's figures instead of training again, and its table names the run")
	fs.Var(intFlag{&o.every, 1}, "checkpoint-every", "steps between a run's checkpoints: a grid stopped (Ctrl-C) or killed continues each unfinished run from its newest one when run again")
	o.every = 100
	fs.Float64Var(&o.minutes, "minutes", 0, "pretraining budget per run in minutes instead of -steps: each run's steps come from timing two of its steps first (the batch family then compares at equal time, not equal pairs)")
	registerEval(fs, &o.eo)
	o.tune.register(fs)
	return fs
}

func runAblate(args []string) error {
	cfg := train.DefaultConfig()
	var o ablateOptions
	fs := ablateFlags(&cfg, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	// Every run of a grid has a step budget: the short recipe unless
	// -recipe says otherwise, then the flags given.
	cfg, _ = recipeConfig(o.recipe, true)
	o = ablateOptions{}
	fs = ablateFlags(&cfg, &o)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("name one family: %s", familyNames())
	}
	family := fs.Arg(0)
	if o.list {
		return listVariants(fs, family)
	}
	vs, err := pickVariants(family, o.only)
	if err != nil {
		return err
	}
	if o.out == "" {
		o.out = filepath.Join("runs", "ablate-"+family)
	}
	// Choices are made on a validation split, never on the test split
	// that reports the final figures.
	valGiven := false
	fs.Visit(func(f *flag.Flag) { valGiven = valGiven || f.Name == "val-fraction" })
	if !valGiven {
		cfg.Data.Validation.Fraction = train.DefaultValidationFraction
	}
	if err := cfg.Validate(); err != nil {
		return err
	}
	d, err := openDevice(*o.adapter)
	if err != nil {
		return err
	}
	defer d.Release()
	if err := o.tune.apply(d, os.Stderr); err != nil {
		return err
	}
	o.sizeFor(d, fs, &cfg)
	// Ctrl-C (or SIGTERM) stops the run in flight at a checkpoint, which
	// the same command continues.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	_, err = ablate(ctx, d, family, vs, cfg, o)
	return err
}

// pickVariants are the variants of family that -only names (all when only
// is "").
func pickVariants(family, only string) ([]variant, error) {
	vs, ok := families[family]
	if !ok {
		return nil, fmt.Errorf("unknown family %q: want one of %s", family, familyNames())
	}
	if only == "" {
		return vs, nil
	}
	var pick []variant
	for _, f := range strings.Split(only, ",") {
		var i int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &i); err != nil || i < 1 || i > len(vs) {
			return nil, fmt.Errorf("-only %q: variants are numbered 1 to %d", only, len(vs))
		}
		pick = append(pick, vs[i-1])
	}
	return pick, nil
}

// listVariants prints the family's variants, one a line and numbered as
// -only takes them (-list).
// Scripts read the family from here (scripts/sweep.sh), so a flag that
// would change a run is refused rather than ignored.
func listVariants(fs *flag.FlagSet, family string) error {
	vs, err := pickVariants(family, "")
	if err != nil {
		return err
	}
	if fs.NFlag() > 1 {
		return fmt.Errorf("flag -list prints the family and runs nothing: it takes no other flag")
	}
	for i, v := range vs {
		fmt.Printf("%d\t%s\n", i+1, v.name)
	}
	return nil
}

// sizeFor sizes the grid's runs for the adapter like the demo, where the
// flags say nothing: a grid is many runs, each a short budgeted run
// evaluated on samples.
func (o *ablateOptions) sizeFor(d *gpu.Device, fs *flag.FlagSet, cfg *train.Config) {
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	cpu := d.IsCPU()
	def := func(name string, v *int, onCPU, onGPU int) {
		if !explicit[name] {
			*v = onGPU
			if cpu {
				*v = onCPU
			}
		}
	}
	def("steps", &cfg.Steps, 100, 2000)
	def("batch", &cfg.Batch, 64, 256)
	def("eval-train", &o.eo.TrainImages, 5000, 0)
	def("eval-test", &o.eo.TestImages, 1000, 0)
	def("probe-epochs", &o.eo.Probe.Epochs, 30, 100)
	cfg.Model.Seed = cfg.Seed
	o.eo.Batch = 512
}

// budget gives a run as many steps as fit in minutes, timed on a
// grayscale twin step of the same network and batch (random views, no
// data loading), at least 10.
func budget(d *gpu.Device, c *train.Config, minutes float64) {
	views, err := c.Data.Views()
	if err != nil {
		return // the run itself reports what does not work
	}
	r, err := bench.MeasureTwinStep(d, c.Model.Arch, c.Batch, views.A.Size, c.Model.Projector, c.Activations(), 0)
	if err != nil {
		return
	}
	c.Steps = max(10, int(minutes*60/r.Seconds))
}

// ablate runs every variant not already done in dir, writes the grid's
// table and plot there (ablation.md, ablation.png), prints the table and
// returns all results in order. Unless reuse is "", a variant with the fingerprint of
// a finished run in a grid under reuse (reuse/*/*/result.json,
// reuse/*/result.json) takes that run's figures: the sweep's families
// share their centre.
func ablate(ctx context.Context, d *gpu.Device, family string, vs []variant, base train.Config, o ablateOptions) ([]ablationResult, error) {
	eo, dir, reuse := o.eo, o.out, o.reuse
	var results []ablationResult
	for i, v := range vs {
		runDir := filepath.Join(dir, slug(v.name))
		resultPath := filepath.Join(runDir, "result.json")
		cfg := base
		v.apply(&cfg)
		key, err := fingerprint(cfg, eo, o.minutes)
		if err != nil {
			return results, fmt.Errorf("%s: %w", v.name, err)
		}
		r, done, err := finished(resultPath, v.name, key)
		if err != nil {
			return results, err
		}
		if done {
			fmt.Fprintf(os.Stderr, "== %s: done before, skipped (%s)\n", v.name, resultPath)
			results = append(results, r)
			continue
		}
		same, from, err := findRun(reuse, key, runDir)
		if err != nil {
			return results, err
		}
		if from != "" {
			fmt.Fprintf(os.Stderr, "== %s: the same run as %s, its figures taken\n", v.name, from)
			same.Variant, same.Paper, same.SameAs = v.name, v.paper, from
			if err := saveResult(runDir, same); err != nil {
				return results, err
			}
			results = append(results, same)
			continue
		}
		fmt.Fprintf(os.Stderr, "== %s %d/%d: %s\n", family, i+1, len(vs), v.name)
		r = ablationResult{Variant: v.name, Paper: v.paper, Fingerprint: key}
		start := time.Now()
		if err := trainVariant(ctx, d, cfg, runDir, o, &r); err != nil {
			return results, fmt.Errorf("%s: %w", v.name, err)
		}
		r.Seconds = time.Since(start).Seconds()
		if err := saveResult(runDir, r); err != nil {
			return results, err
		}
		results = append(results, r)
	}
	table := ablationTable(d.Info.Name, family, base, o.minutes, results)
	if err := writeAblation(dir, table, family, results); err != nil {
		return results, err
	}
	fmt.Println(table)
	return results, nil
}

// trainVariant trains a variant's run of cfg in runDir and fills r with
// its figures: a diverged run or one that does not fit the adapter says
// so in r, not as an error.
func trainVariant(ctx context.Context, d *gpu.Device, cfg train.Config, runDir string, o ablateOptions, r *ablationResult) error {
	// A variant's directory without its result.json holds an
	// unfinished run of this grid's own: continued from its checkpoint
	// when that is this variant's run, replaced otherwise. Only a run
	// that starts anew is timed for a budget of minutes: a continued
	// one keeps the steps it was given.
	ro := runOptions{out: runDir, overwrite: true, every: o.every, keep: 1}
	c, resolved := unfinished(runDir, cfg, o.minutes)
	switch {
	case c != nil:
		cfg, ro.ckpt, ro.resume, ro.overwrite = resolved, c, c.Path, false
		r.ResumedFrom = c.State.Step
	case o.minutes > 0:
		budget(d, &cfg, o.minutes)
	}
	res, err := pretrain(ctx, d, cfg, ro, os.Stderr)
	switch {
	case errors.Is(err, train.ErrNonFinite):
		r.Diverged = err.Error()
	case errors.Is(err, train.ErrMemory):
		r.Unfit = err.Error()
	case errors.Is(err, train.ErrEnded) && c != nil:
		// Stopped while it was evaluated: the checkpoint holds the
		// whole run, and its metrics the losses.
		return r.evaluateEnded(d, c, cfg, o.eo)
	case err != nil:
		return err
	default:
		r.Steps, r.LossEnd = res.steps, res.lossEnd
		defer res.release()
		return r.evaluate(d, res.run.Model, res.cfg, o.eo)
	}
	return nil
}

// evaluate fills r's figures from m, trained by a run of cfg.
func (r *ablationResult) evaluate(d *gpu.Device, m *train.Model, cfg train.Config, eo eval.Options) error {
	eo.Split, eo.Seed = cfg.Data.ChoiceSplit(), cfg.Seed
	ev, err := eval.Evaluate(d, m, cfg.Data, eo)
	if err != nil {
		return fmt.Errorf("evaluation: %w", err)
	}
	r.KNN20, r.KNN200, r.Linear, r.Split = ev.KNN[0], ev.KNN[1], ev.Linear.Top1, eo.Split
	return nil
}

// evaluateEnded fills r from a run of cfg that ended at checkpoint c
// before it was evaluated.
func (r *ablationResult) evaluateEnded(d *gpu.Device, c *train.Checkpoint, cfg train.Config, eo eval.Options) error {
	rows, err := train.TruncateMetrics(filepath.Join(filepath.Dir(c.Path), train.MetricsFile), c.State.Step)
	if err != nil {
		return err
	}
	if len(rows) != c.State.Step {
		return fmt.Errorf("%s: %d rows of metrics for the %d steps of its checkpoint", filepath.Dir(c.Path), len(rows), c.State.Step)
	}
	losses := make([]float64, len(rows))
	for i, row := range rows {
		losses[i] = float64(row.Loss)
	}
	r.Steps = len(rows)
	_, r.LossEnd = lossEnds(losses)
	m, err := c.Backbone(d)
	if err != nil {
		return err
	}
	defer m.Release()
	return r.evaluate(d, m, cfg, eo)
}

// unfinished is the newest checkpoint in runDir when it belongs to an
// unfinished run of cfg, with the configuration that continues it (nil and
// cfg otherwise): the same run as Checkpoint.Continues has it, and as long
// as cfg's, since a variant of another length is another variant. Under a
// budget of minutes the run's steps are the ones timed when it started,
// which cfg, not yet timed, does not know.
func unfinished(runDir string, cfg train.Config, minutes float64) (*train.Checkpoint, train.Config) {
	path := filepath.Join(runDir, train.Latest)
	if _, err := os.Stat(path); err != nil {
		return nil, cfg
	}
	c, err := train.LoadCheckpoint(path)
	var resolved train.Config
	if err == nil {
		if minutes > 0 {
			cfg.Steps = c.State.Config.Steps
		}
		resolved, err = c.Continues(cfg)
	}
	if err == nil && (c.State.Config.Epochs != cfg.Epochs || c.State.Config.Steps != cfg.Steps) {
		err = fmt.Errorf("a run of %d epochs and %d steps, the variant's is %d and %d", c.State.Config.Epochs, c.State.Config.Steps, cfg.Epochs, cfg.Steps)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "== %s: not continued (%v); the run starts again\n", path, err)
		return nil, cfg
	}
	return c, resolved
}

// saveResult writes r as runDir/result.json, making the directory for a
// run refused before it started (does not fit) or taken from another.
func saveResult(runDir string, r ablationResult) error {
	b, _ := json.MarshalIndent(r, "", "  ")
	if err := os.MkdirAll(runDir, 0o755); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(runDir, "result.json"), append(b, '\n'), 0o644)
}

// fingerprint is a digest of everything that decides a run's figures: its
// configuration, with the augmentation settings resolved into the views
// they make (a smallest crop of 0.08 and the preset's 0.08 are one run),
// and the evaluation. Under a budget of minutes (-minutes) the budget
// stands for the steps, which are timed anew each time the grid runs.
func fingerprint(c train.Config, eo eval.Options, minutes float64) (string, error) {
	views, err := c.Data.Views()
	if err != nil {
		return "", err
	}
	c.Data.CropMin, c.Data.Jitter = 0, 0
	if minutes > 0 {
		c.Steps = 0
	}
	// The evaluation as it was printed before the options had a split, a
	// seed and the probe a place: the split and the seed follow from the
	// configuration (its validation fraction and seed), where the probe
	// trains does not change what it computes, and the recorded runs keep
	// their digests.
	type probeSettings struct {
		Epochs                    int
		Batch                     int
		LR, Momentum, WeightDecay float64
		Seed                      uint64
	}
	p := eo.Probe
	e := struct {
		trainN, testN int
		batch         int
		probe         probeSettings
		act           gpu.DType
	}{eo.TrainImages, eo.TestImages, eo.Batch, probeSettings{p.Epochs, p.Batch, p.LR, p.Momentum, p.WeightDecay, p.Seed}, eo.Activations}
	b, err := json.Marshal(struct {
		Config  train.Config
		Views   pipeline.Config
		Eval    string
		Minutes float64 `json:",omitempty"` // without a budget, the digest the recorded runs have
	}{c, views, fmt.Sprintf("%+v", e), minutes})
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:]), nil
}

// finished reads the result.json at path of a variant of this grid, if
// there is one. A result of another variant, or of this variant run with
// other settings, is refused rather than taken or overwritten: a grid
// rerun into the same -out with other flags would otherwise put the old
// figures in the new table. Results saved before fingerprints were
// recorded are taken by the variant's name.
func finished(path, name, key string) (ablationResult, bool, error) {
	var r ablationResult
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, err
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, fmt.Errorf("%s: %w", path, err)
	}
	switch {
	case r.Variant != name:
		return r, false, fmt.Errorf("%s: the result of %q, not %q", path, r.Variant, name)
	case r.Fingerprint != "" && r.Fingerprint != key:
		return r, false, fmt.Errorf("%s: %q was run there with other settings; give another -out, or remove %s to run it again", path, name, filepath.Dir(path))
	}
	return r, true, nil
}

// findRun looks under dir for a finished run other than self with the
// fingerprint key, and returns its result and directory relative to dir
// ("" when none or when dir is "").
func findRun(dir, key, self string) (ablationResult, string, error) {
	if dir == "" {
		return ablationResult{}, "", nil
	}
	var paths []string
	for _, pattern := range []string{"*/result.json", "*/*/result.json"} {
		m, err := filepath.Glob(filepath.Join(dir, pattern))
		if err != nil {
			return ablationResult{}, "", fmt.Errorf("-reuse %s: %w", dir, err)
		}
		paths = append(paths, m...)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return ablationResult{}, "", err
		}
		var r ablationResult
		if err := json.Unmarshal(b, &r); err != nil {
			return ablationResult{}, "", fmt.Errorf("%s: %w", p, err)
		}
		// A taken result names its origin; following it avoids chains.
		if from := filepath.Dir(p); r.Fingerprint == key && r.SameAs == "" && filepath.Clean(from) != filepath.Clean(self) {
			rel, err := filepath.Rel(dir, from)
			if err != nil {
				return ablationResult{}, "", err
			}
			return r, rel, nil
		}
	}
	return ablationResult{}, "", nil
}

// slug names a variant's run directory after the variant, so that a grid
// finds its finished runs whatever subset (-only) or order it runs in.
func slug(name string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(name) {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' {
			b.WriteRune(r)
			dash = false
		} else if !dash && b.Len() > 0 {
			b.WriteByte('-')
			dash = true
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// ablationTable is the grid's table in Markdown. Under a budget of minutes
// each variant ran the steps that fit it, which the steps column gives.
func ablationTable(adapter, family string, cfg train.Config, minutes float64, rs []ablationResult) string {
	var b strings.Builder
	paper := "Paper: ResNet-50 on ImageNet, 300 epochs, linear top-1 (%)."
	if sweeps[family] {
		paper = "Paper: its choice of the setting, tuned for 1000 epochs."
	}
	budget := fmt.Sprintf("%d steps per run", cfg.Steps)
	if minutes > 0 {
		budget = fmt.Sprintf("%g minutes per run", minutes)
	}
	split := "Figures on the test split."
	if v := cfg.Data.Validation; v.Fraction > 0 {
		split = fmt.Sprintf("Figures on the validation split: %g%% of the training images, drawn by seed %d, held out of pretraining and of the probes' training (the test split is kept for final figures).", 100*v.Fraction, v.Seed)
	}
	fmt.Fprintf(&b, "## Ablation: %s\n\n%s, %s, batch %d unless varied, %s; adapter %s.\n%s\n%s\n\n",
		family, cfg.Data.Name, cfg.Model.Arch, cfg.Batch, budget, adapter, split, paper)
	b.WriteString("| variant | steps | kNN k=20 | kNN k=200 | linear top-1 | final loss | paper |\n|---|---|---|---|---|---|---|\n")
	for _, r := range rs {
		name := r.Variant
		if r.SameAs != "" {
			name += " (the run of " + r.SameAs + ")"
		}
		if r.Diverged != "" {
			fmt.Fprintf(&b, "| %s | | diverged | | | | %s |\n", name, r.Paper)
			continue
		}
		if r.Unfit != "" {
			fmt.Fprintf(&b, "| %s | | does not fit this adapter | | | | %s |\n", name, r.Paper)
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %.1f%% | %.1f%% | %.1f%% | %.1f | %s |\n", name, r.Steps, 100*r.KNN20, 100*r.KNN200, 100*r.Linear, r.LossEnd, r.Paper)
	}
	return b.String()
}

// writeAblation writes the table and a plot of accuracy per variant:
// points on an axis that spans the figures, since the sweep's variants
// differ by a point or two, which bars from zero do not show.
func writeAblation(dir, table, family string, rs []ablationResult) error {
	if err := os.WriteFile(filepath.Join(dir, "ablation.md"), []byte(table), 0o644); err != nil {
		return err
	}
	p := plot.New()
	p.Title.Text = "Ablation: " + family
	p.Y.Label.Text = "accuracy (%)"
	var knn, lin plotter.XYs
	names := make([]string, len(rs))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, r := range rs {
		names[i] = r.Variant
		// Runs without figures say why and have no points, rather than
		// read as zero accuracy.
		switch {
		case r.Unfit != "":
			names[i] += " (does not fit)"
			continue
		case r.Diverged != "":
			names[i] += " (diverged)"
			continue
		}
		knn = append(knn, plotter.XY{X: float64(i) - 0.08, Y: 100 * r.KNN20})
		lin = append(lin, plotter.XY{X: float64(i) + 0.08, Y: 100 * r.Linear})
		lo = min(lo, 100*r.KNN20, 100*r.Linear)
		hi = max(hi, 100*r.KNN20, 100*r.Linear)
	}
	if len(knn) == 0 {
		lo, hi = 0, 100
	}
	p.Add(plotter.NewGrid())
	for _, s := range []struct {
		name  string
		xys   plotter.XYs
		c     color.RGBA
		shape draw.GlyphDrawer
	}{
		{"kNN k=20", knn, color.RGBA{R: 30, G: 90, B: 200, A: 255}, draw.CircleGlyph{}},
		{"linear top-1", lin, color.RGBA{R: 220, G: 120, B: 30, A: 255}, draw.BoxGlyph{}},
	} {
		sc, err := plotter.NewScatter(s.xys)
		if err != nil {
			return err
		}
		sc.GlyphStyle = draw.GlyphStyle{Color: s.c, Radius: vg.Points(4), Shape: s.shape}
		p.Add(sc)
		p.Legend.Add(s.name, sc)
	}
	p.Legend.Top = true
	// Whole points around the figures, and a quarter more above for the
	// legend.
	lo, hi = math.Floor(lo)-1, math.Ceil(hi)+1
	p.Y.Min, p.Y.Max = lo, hi+(hi-lo)/4
	p.NominalX(names...)
	p.X.Min, p.X.Max = -0.5, float64(len(rs)) // room on the right for the last, slanted label
	p.X.Tick.Label.Rotation = 0.4
	p.X.Tick.Label.XAlign, p.X.Tick.Label.YAlign = -0.9, -0.5
	return p.Save(vg.Points(float64(220+110*len(rs))), 5*vg.Inch, filepath.Join(dir, "ablation.png"))
}
