package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/bt-org/bt/bt"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/report"
	"github.com/bt-org/bt/internal/rundir"
	"github.com/bt-org/bt/internal/strictjson"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"
)

// trainFlags are pretraining's settings; a checkpoint stores them so that
// --resume continues with exactly the same run.
type trainFlags struct {
	Data      string    `json:"data"`
	DataDir   string    `json:"data_dir"`
	Augment   string    `json:"augment"`
	Size      int       `json:"size"`
	Arch      string    `json:"arch"`
	Stem      string    `json:"stem"`
	Projector string    `json:"projector"`
	NoBN      bool      `json:"projector_no_bn"`
	Lambda    float64   `json:"lambda"`
	ScaleLoss float64   `json:"scale_loss"`
	Fused     string    `json:"fused"`
	Batch     int       `json:"batch"`
	Epochs    int       `json:"epochs"`
	MaxSteps  int       `json:"max_steps"`
	Optimizer string    `json:"optimizer"`
	LR        float64   `json:"lr"`
	LRWeights float64   `json:"lr_weights"`
	LRBiases  float64   `json:"lr_biases"`
	WD        float64   `json:"weight_decay"`
	Warmup    bt.Warmup `json:"warmup"`
	Seed      uint64    `json:"seed"`
	Workers   int       `json:"workers"`
	MemoryGiB float64   `json:"memory_gib"`
	Without   string    `json:"augment_without,omitempty"`
	StopGrad  bool      `json:"stop_gradient,omitempty"`
	NoInvar   bool      `json:"redundancy_only,omitempty"`
	Predictor bool      `json:"predictor,omitempty"`
	NoNorm    bool      `json:"no_normalisation,omitempty"`
	FeatNorm  bool      `json:"feature_normalisation,omitempty"`
	InfoNCE   float64   `json:"infonce_temperature,omitempty"`
	SkipBad   bool      `json:"skip_bad_images,omitempty"`
	MaxBad    float64   `json:"max_bad_fraction"`
	MaxPixels int       `json:"max_pixels"`
}

func (f *trainFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.Data, "data", "fashion-mnist", "dataset: fashion-mnist, mnist, cifar10, cifar100, folder, folder-unlabeled, synthetic")
	fs.StringVar(&f.DataDir, "data-dir", "", "dataset directory (default /usr/share/datasets/<data>)")
	fs.StringVar(&f.Augment, "augment", "", "augmentation preset: imagenet, cifar, fashion-mnist, mnist (default: the dataset's)")
	fs.IntVar(&f.Size, "size", 0, "image size of the views (default: the preset's)")
	fs.StringVar(&f.Arch, "arch", "tiny", "backbone: "+strings.Join(models.Archs, ", "))
	fs.StringVar(&f.Stem, "stem", "", "backbone stem: imagenet or small (default: small for tiny and images under 64 px, else imagenet)")
	fs.StringVar(&f.Projector, "projector", "512-512-512", "projector widths; the paper uses 8192-8192-8192")
	fs.BoolVar(&f.NoBN, "projector-no-bn", false, "drop the projector's BatchNorms (an ablation)")
	fs.Float64Var(&f.Lambda, "lambda", float64(bt.DefaultLambda), "weight of the redundancy-reduction term")
	fs.Float64Var(&f.ScaleLoss, "scale-loss", 1, "multiplies the loss (solo-learn's CIFAR recipe uses 0.1)")
	fs.StringVar(&f.Fused, "fused", "auto", "loss path: auto, on (never forms C), off (materialises C)")
	fs.IntVar(&f.Batch, "batch", 256, "batch size (pairs per step)")
	fs.IntVar(&f.Epochs, "epochs", 100, "epochs; the schedule spans them")
	fs.IntVar(&f.MaxSteps, "steps", 0, "stop after this many steps, compressing the schedule to fit (0: all epochs)")
	fs.StringVar(&f.Optimizer, "optimizer", "lars", "optimiser: "+strings.Join(bt.OptimizerNames, ", "))
	fs.Float64Var(&f.LR, "lr", 1, "learning-rate multiplier: the base rate is lr·batch/256")
	fs.Float64Var(&f.LRWeights, "lr-weights", 0.2, "weights' share of the rate")
	fs.Float64Var(&f.LRBiases, "lr-biases", 0.0048, "biases' and BatchNorm's share of the rate")
	fs.Float64Var(&f.WD, "wd", 1.5e-6, "weight decay")
	fs.TextVar(&f.Warmup, "warmup", bt.DefaultSchedule().Warmup, "warm-up: epochs of the full schedule (10; a -steps budget warms up over the same share of its steps), a share of the run (10%), or steps (500steps)")
	fs.Uint64Var(&f.Seed, "seed", 1, "seed of the initialisation and of the data order and augmentations")
	fs.IntVar(&f.Workers, "workers", 0, "data-loading goroutines (default: the number of CPUs)")
	fs.StringVar(&f.Without, "augment-without", "", "drop augmentations (an ablation): "+strings.Join(pipeline.Ablations, ", "))
	fs.BoolVar(&f.Predictor, "predictor", false, "add a predictor (2 layers, BatchNorm and ReLU between) on one branch (an asymmetry ablation)")
	fs.Float64Var(&f.InfoNCE, "infonce", 0, "train with the cross-entropy with this temperature (InfoNCE) instead of the Barlow Twins loss: the paper's comparison (0: Barlow Twins)")
	fs.BoolVar(&f.FeatNorm, "feature-normalisation", false, "normalise each embedding over its features instead of each feature over the batch (an ablation)")
	fs.BoolVar(&f.NoNorm, "no-normalisation", false, "use the embeddings without batch normalisation in the loss (an ablation, with -projector-no-bn)")
	fs.BoolVar(&f.NoInvar, "redundancy-only", false, "drop the invariance term of the loss (an ablation)")
	fs.BoolVar(&f.StopGrad, "stop-gradient", false, "stop the gradient through the second branch (an asymmetry ablation)")
	fs.BoolVar(&f.SkipBad, "skip-bad-images", false, "skip images that do not decode (each logged once and counted) instead of stopping at the first")
	fs.Float64Var(&f.MaxBad, "max-bad-fraction", pipeline.DefaultMaxBadFraction, "with -skip-bad-images, stop once more than this share of the images tried is bad")
	fs.IntVar(&f.MaxPixels, "max-pixels", pipeline.DefaultMaxPixels, "refuse images with more pixels than this, read from their header before decoding (-1: no limit)")
	fs.Float64Var(&f.MemoryGiB, "memory", 0, "device memory to plan for, in GiB (WebGPU does not report it; 0 checks only the adapter's per-buffer limit)")
}

// defaultTrainFlags is pretraining's settings with every flag at its
// default.
func defaultTrainFlags() trainFlags {
	var tf trainFlags
	fs := flag.NewFlagSet("defaults", flag.ContinueOnError)
	tf.register(fs)
	return tf
}

func runPretrain(args []string) error {
	fs, adapter := newFlags("pretrain", "Pretrains a backbone with Barlow Twins and writes checkpoints, metrics.jsonl and plots into -out.")
	var tf trainFlags
	tf.register(fs)
	var ro runOptions
	ro.register(fs)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q: pretrain takes only flags", fs.Arg(0))
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if err := ro.resolve(&tf, explicit); err != nil {
		return err
	}
	d, err := gpu.Open(gpu.Options{Adapter: *adapter})
	if err != nil {
		return err
	}
	defer d.Release()
	res, err := pretrain(d, tf, ro, os.Stderr)
	if err != nil {
		return err
	}
	res.release()
	return nil
}

// runOptions say where a run goes and how it is kept, as opposed to what it
// trains (trainFlags).
type runOptions struct {
	out       string
	overwrite bool
	every     int
	keep      int
	resume    string
	ckpt      *bt.Checkpoint // the loaded -resume file
	monitor   knnMonitor
	// auto picks the next free directory named after out (runs/pretrain,
	// runs/pretrain-2, …): the user named none.
	auto bool
}

func (ro *runOptions) register(fs *flag.FlagSet) {
	fs.StringVar(&ro.out, "out", "runs/pretrain", "run directory (default: runs/pretrain, or the next free runs/pretrain-N; with -resume, the checkpoint's directory)")
	fs.BoolVar(&ro.overwrite, "overwrite", false, "replace the run in -out (by default a directory that holds another run is refused)")
	fs.IntVar(&ro.every, "checkpoint-every", 500, "steps between checkpoints (one is always written at the end)")
	fs.IntVar(&ro.keep, "keep", bt.DefaultKeep, "checkpoints to keep (checkpoint-STEP.safetensors; checkpoint.safetensors is always the newest)")
	fs.StringVar(&ro.resume, "resume", "", "checkpoint to continue from exactly; its settings are the run's (only -epochs and -steps may extend it)")
	fs.IntVar(&ro.monitor.every, "knn-every", 0, "steps between kNN accuracy checks on the test split (0: never); results go to metrics.jsonl")
	fs.IntVar(&ro.monitor.trainN, "knn-images", 5000, "training images the kNN monitor samples (test images: a fifth of that)")
}

// resumable are the training flags a resumed run may change: they extend
// it or only change how it is computed, not what it trains.
var resumable = map[string]bool{"epochs": true, "steps": true, "workers": true, "memory": true}

// resolve checks the run options and the training flags before anything is
// opened or written, and with -resume replaces tf by the checkpoint's
// settings (and the flags that may extend them).
func (ro *runOptions) resolve(tf *trainFlags, explicit map[string]bool) error {
	switch {
	case ro.every < 0:
		return fmt.Errorf("-checkpoint-every %d: must be 0 (only at the end) or more", ro.every)
	case ro.keep < 1:
		return fmt.Errorf("-keep %d: at least 1 checkpoint must be kept", ro.keep)
	case ro.monitor.every < 0:
		return fmt.Errorf("-knn-every %d: must be 0 (never) or more", ro.monitor.every)
	case ro.monitor.trainN < 1:
		return fmt.Errorf("-knn-images %d: must be at least 1", ro.monitor.trainN)
	case ro.overwrite && ro.resume != "":
		return errors.New("-overwrite and -resume: a run is either replaced or continued")
	}
	ro.monitor.testN = max(1, ro.monitor.trainN/5)
	ro.auto = !explicit["out"] && ro.resume == ""
	if ro.resume != "" {
		c, err := bt.LoadCheckpoint(ro.resume)
		if err != nil {
			return err
		}
		if len(c.State.Train) == 0 || c.Opt == nil {
			return fmt.Errorf("-resume %s: it holds no run settings or optimiser state to resume from (was it written by bt pretrain?)", ro.resume)
		}
		for name := range explicit {
			if trainFlagNames[name] && !resumable[name] {
				return fmt.Errorf("-%s: a resumed run keeps its checkpoint's settings; only -epochs, -steps, -workers and -memory may be given with -resume", name)
			}
		}
		given := *tf
		if err := strictjson.Decode(c.State.Train, tf); err != nil {
			return fmt.Errorf("-resume %s: its run settings: %v", ro.resume, err)
		}
		if explicit["epochs"] {
			tf.Epochs = given.Epochs
		}
		if explicit["steps"] {
			tf.MaxSteps = given.MaxSteps
		}
		tf.Workers, tf.MemoryGiB = given.Workers, given.MemoryGiB
		ro.ckpt = c
		if !explicit["out"] {
			ro.out = filepath.Dir(ro.resume)
		}
	}
	return tf.validate()
}

// trainFlagNames are the flags trainFlags registers.
var trainFlagNames = func() map[string]bool {
	fs := flag.NewFlagSet("names", flag.ContinueOnError)
	var tf trainFlags
	tf.register(fs)
	names := map[string]bool{}
	fs.VisitAll(func(f *flag.Flag) { names[f.Name] = true })
	return names
}()

// validate checks every training setting's range, naming its flag, so
// that nothing out of range reaches the device or the run directory.
func (tf trainFlags) validate() error {
	for _, f := range []struct {
		name string
		v    float64
		min  float64
		open bool // the minimum itself is out of range
	}{
		{"lambda", tf.Lambda, 0, false}, {"scale-loss", tf.ScaleLoss, 0, true},
		{"lr", tf.LR, 0, true}, {"lr-weights", tf.LRWeights, 0, false}, {"lr-biases", tf.LRBiases, 0, false},
		{"wd", tf.WD, 0, false}, {"memory", tf.MemoryGiB, 0, false}, {"infonce", tf.InfoNCE, 0, false},
		{"max-bad-fraction", tf.MaxBad, 0, false},
	} {
		switch {
		case math.IsNaN(f.v) || math.IsInf(f.v, 0):
			return fmt.Errorf("-%s %v: must be a finite number", f.name, f.v)
		case f.open && f.v <= f.min:
			return fmt.Errorf("-%s %v: must be more than %v", f.name, f.v, f.min)
		case f.v < f.min:
			return fmt.Errorf("-%s %v: must be at least %v", f.name, f.v, f.min)
		}
	}
	for _, f := range []struct {
		name   string
		v, min int
		what   string
	}{
		{"batch", tf.Batch, 2, "pairs (BatchNorm and the loss normalise over the batch)"},
		{"epochs", tf.Epochs, 1, ""}, {"steps", tf.MaxSteps, 0, "(0: all epochs)"},
		{"size", tf.Size, 0, "(0: the preset's)"}, {"workers", tf.Workers, 0, "(0: one per CPU)"},
	} {
		if f.v < f.min {
			return fmt.Errorf("-%s %d: must be at least %d %s", f.name, f.v, f.min, f.what)
		}
	}
	if tf.MaxBad > 1 {
		return fmt.Errorf("-max-bad-fraction %v: a share is at most 1", tf.MaxBad)
	}
	if tf.MaxPixels == 0 || tf.MaxPixels < -1 {
		return fmt.Errorf("-max-pixels %d: want a positive limit, or -1 for none", tf.MaxPixels)
	}
	if tf.Size > 0 && tf.Size < 8 {
		return fmt.Errorf("-size %d: views must be at least 8 pixels", tf.Size)
	}
	if !slices.Contains(models.Archs, tf.Arch) {
		return fmt.Errorf("-arch %q: choose one of %s", tf.Arch, strings.Join(models.Archs, ", "))
	}
	if tf.Stem != "" && tf.Stem != string(models.ImageNetStem) && tf.Stem != string(models.SmallStem) {
		return fmt.Errorf("-stem %q: want imagenet or small", tf.Stem)
	}
	if _, err := models.ParseSpec(tf.Projector); err != nil {
		return fmt.Errorf("-projector %q: %v", tf.Projector, err)
	}
	if !slices.Contains(bt.OptimizerNames, tf.Optimizer) {
		return fmt.Errorf("-optimizer %q: choose one of %s", tf.Optimizer, strings.Join(bt.OptimizerNames, ", "))
	}
	if tf.Fused != "auto" && tf.Fused != "on" && tf.Fused != "off" {
		return fmt.Errorf("-fused %q: want auto, on or off", tf.Fused)
	}
	if tf.Augment != "" && !slices.Contains(pipeline.PresetNames(), tf.Augment) {
		return fmt.Errorf("-augment %q: choose one of %s", tf.Augment, strings.Join(pipeline.PresetNames(), ", "))
	}
	if tf.Without != "" && !slices.Contains(pipeline.Ablations, tf.Without) {
		return fmt.Errorf("-augment-without %q: choose one of %s", tf.Without, strings.Join(pipeline.Ablations, ", "))
	}
	if tf.NoNorm && tf.FeatNorm {
		return errors.New("-no-normalisation and -feature-normalisation: the loss normalises one way or not at all")
	}
	if tf.InfoNCE > 0 && (tf.NoInvar || tf.NoNorm || tf.FeatNorm) {
		return errors.New("-infonce replaces the Barlow Twins loss; -redundancy-only, -no-normalisation and -feature-normalisation change that loss and cannot go with it")
	}
	return nil
}

// pretrainResult is a finished run, kept for evaluation (bt demo).
type pretrainResult struct {
	model     *bt.Model
	flags     trainFlags
	dir       string
	run       *rundir.Dir // held until release
	lossStart float64     // mean of the first tenth of the losses
	lossEnd   float64     // mean of the last tenth
	pairsPerS float64
	steps     int
	elapsed   time.Duration
}

func (r *pretrainResult) release() {
	r.model.Release()
	r.run.Close()
}

// dataset opens the train or test split of the flags' dataset.
func (tf trainFlags) dataset(split string) (pipeline.Dataset, error) {
	return pipeline.Open(tf.Data, tf.DataDir, split, pipeline.FolderOptions{MaxPixels: tf.MaxPixels})
}

// augmentPreset is the augmentation preset: the flag's, or the dataset's.
func (tf trainFlags) augmentPreset() string {
	if tf.Augment != "" {
		return tf.Augment
	}
	switch strings.ToLower(tf.Data) {
	case "fashion-mnist", "fashion_mnist", "fashionmnist":
		return "fashion-mnist"
	case "mnist":
		return "mnist"
	case "cifar10", "cifar-10", "cifar100", "cifar-100", "synthetic":
		return "cifar"
	}
	return "imagenet"
}

// modelConfig is the network the flags describe for data of c channels and
// views of size px.
func (tf trainFlags) modelConfig(c, size int) bt.ModelConfig {
	stem := models.Stem(tf.Stem)
	if stem == "" && size < 64 {
		stem = models.SmallStem
	}
	return bt.ModelConfig{Arch: tf.Arch, Stem: stem, InChannels: c, Projector: tf.Projector, NoBN: tf.NoBN, Predictor: tf.Predictor, Seed: tf.Seed}
}

// pretrain runs (or resumes) a pretraining run and leaves its outputs in
// dir. log receives progress.
// knnMonitor evaluates the backbone with kNN every so many steps while it
// trains, as lightly and solo-learn report.
type knnMonitor struct {
	every, trainN, testN int
}

func pretrain(d *gpu.Device, tf trainFlags, ro runOptions, log io.Writer) (res *pretrainResult, err error) {
	ckpt := ro.ckpt
	ds, err := tf.dataset("train")
	if err != nil {
		return nil, err
	}
	views, err := pipeline.Preset(tf.augmentPreset())
	if err != nil {
		return nil, err
	}
	if tf.Size > 0 {
		views.A.Size, views.B.Size = tf.Size, tf.Size
	}
	if tf.Without != "" {
		if views, err = views.Without(tf.Without); err != nil {
			return nil, err
		}
	}
	size, c := views.A.Size, views.A.Channels()
	if tf.Batch < 2 || tf.Batch > ds.Len() {
		return nil, fmt.Errorf("batch %d: need at least 2 pairs and no more than the %d images of %s", tf.Batch, ds.Len(), tf.Data)
	}
	mc := tf.modelConfig(c, size)
	if ckpt != nil {
		mc = ckpt.State.Model
	}
	plannedFused := bt.AutoFused(d, tf.Batch, lastWidth(mc.Projector))
	if tf.Fused == "on" || tf.Fused == "off" {
		plannedFused = tf.Fused == "on"
	}
	planned := bt.LossFor(plannedFused)
	if tf.InfoNCE > 0 {
		planned = bt.InfoNCELoss
	}
	plan, err := bt.CheckMemory(d, mc, tf.Batch, c, size, size, planned, tf.Optimizer, int64(tf.MemoryGiB*(1<<30)))
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "memory   %s\n", plan)
	run, err := ro.openDir()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			run.Close()
		}
	}()
	dir := run.Path
	model, err := bt.NewModel(d, mc)
	if err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			model.Release()
		}
	}()
	dim := model.Projector.Out
	fused := bt.AutoFused(d, tf.Batch, dim)
	switch tf.Fused {
	case "on":
		fused = true
	case "off":
		fused = false
	case "auto":
	default:
		return nil, fmt.Errorf("-fused %q: want auto, on or off", tf.Fused)
	}
	// The objective: the Barlow Twins loss, or InfoNCE for the paper's
	// comparison; loss stays nil then.
	var loss *bt.Loss
	var objective bt.Objective
	if tf.InfoNCE > 0 {
		if objective, err = bt.NewInfoNCE(d, tf.Batch, dim, float32(tf.InfoNCE)); err != nil {
			return nil, err
		}
	} else {
		if loss, err = bt.NewLoss(d, tf.Batch, dim, float32(tf.Lambda), fused); err != nil {
			return nil, err
		}
		loss.Scale = float32(tf.ScaleLoss)
		if tf.NoInvar {
			loss.OnDiag = 0
		}
		loss.NoNorm, loss.FeatureNorm = tf.NoNorm, tf.FeatNorm
		objective = loss
	}
	defer objective.Release()
	oc := bt.DefaultOptimizerConfig()
	oc.LARS.WeightDecay, oc.SGD.WeightDecay, oc.AdamW.WeightDecay = tf.WD, tf.WD, tf.WD
	opt, err := bt.NewOptimizer(tf.Optimizer, d, model.Params(), oc)
	if err != nil {
		return nil, err
	}
	defer opt.Release()
	start := 0
	if ckpt != nil {
		if err := ckpt.Restore(model, opt); err != nil {
			return nil, err
		}
		start = ckpt.State.Step
	}
	spe := ds.Len() / tf.Batch
	loader, err := pipeline.NewLoader(ds, views, pipeline.LoaderConfig{BatchSize: tf.Batch, Workers: tf.Workers, Seed: tf.Seed,
		Shuffle: true, DropLast: true, Epoch: start / spe, Step: start % spe,
		SkipBad: tf.SkipBad, MaxBadFraction: tf.MaxBad, OnSkip: func(s pipeline.Skip) { fmt.Fprintf(log, "skipped  %v\n", s.Err) }})
	if err != nil {
		return nil, err
	}
	defer loader.Close()
	tr, err := bt.NewTrainer(d, model, objective, opt, tf.Batch, c, size, size)
	if err != nil {
		return nil, err
	}
	defer tr.Release()
	tr.Step = start
	tr.StopGradB = tf.StopGrad
	sched := bt.DefaultSchedule()
	sched.Multiplier, sched.Weights, sched.Vectors, sched.Warmup = tf.LR, tf.LRWeights, tf.LRBiases, tf.Warmup
	raw, err := json.Marshal(tf)
	if err != nil {
		return nil, err
	}
	loop := &bt.Loop{Trainer: tr, Loader: loader, Schedule: sched, Epochs: tf.Epochs, MaxSteps: tf.MaxSteps, Batch: tf.Batch,
		CheckpointDir: dir, CheckpointEvery: ro.every, Keep: ro.keep,
		Run: bt.RunState{Model: mc, Train: raw}}
	if start >= loop.Steps() {
		return nil, fmt.Errorf("-resume %s: the checkpoint is at step %d, the end of its run of %d steps; give more -epochs or -steps to extend it", ro.resume, start, loop.Steps())
	}
	if err := run.Start(); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.json"), append(raw, '\n'), 0o644); err != nil {
		return nil, err
	}
	fmt.Fprintf(log, "adapter  %s\nmodel    %s\ndata     %s train, %d images, %dpx %d-channel views (%s preset), batch %d, %d steps (%d per epoch)\nloss     %s path, λ %g\n",
		d.Info, model.Describe(), tf.Data, ds.Len(), size, c, tf.augmentPreset(), tf.Batch, loop.Steps(), spe, bt.PathName(fused), tf.Lambda)
	fmt.Fprintf(log, "optimise %s, weight decay %g, seed %d\nschedule %s\n", tf.Optimizer, tf.WD, tf.Seed,
		sched.Describe(sched.Warmup.Steps(loop.Steps(), tf.Epochs), loop.Steps(), tf.Batch))
	fmt.Fprintf(log, "run      %s\n", dir)
	if start > 0 {
		fmt.Fprintf(log, "resuming from %s at step %d\n", ro.resume, start)
	}
	// A resumed run logs again the steps after its checkpoint, so the
	// metrics of those steps from the interrupted run are dropped first.
	if err := truncateMetrics(filepath.Join(dir, "metrics.jsonl"), start); err != nil {
		return nil, err
	}
	metrics, err := os.OpenFile(filepath.Join(dir, "metrics.jsonl"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer metrics.Close()
	var steps []int
	var losses []float32
	var lastEv bt.Event
	progress := newProgress(log, loop.Steps()-start)
	heat := func(name string) error {
		za, zb, err := tr.Embeddings()
		if err != nil {
			return err
		}
		const dims = 64
		return report.Heatmap(filepath.Join(dir, name), bt.CrossCorrelation(za, zb, tf.Batch, dim, dims), min(dims, dim), 6)
	}
	loop.Hooks = []bt.Hook{
		{Name: "metrics", Fn: func(_ *bt.Loop, ev bt.Event) error {
			steps, losses, lastEv = append(steps, ev.Step), append(losses, ev.Loss), ev
			mem := d.MemStats()
			b, _ := json.Marshal(map[string]any{"step": ev.Step + 1, "epoch": ev.Epoch, "loss": ev.Loss,
				"lr_weights": ev.LRWeights, "lr_biases": ev.LRVectors, "pairs_per_s": ev.PairsPerS, "elapsed_s": ev.Elapsed.Seconds(),
				"bad_images": len(loader.Skipped()), "device_bytes": mem.Live + mem.Idle, "rss_bytes": rssBytes()})
			_, err := metrics.Write(append(b, '\n'))
			progress.update(ev)
			return err
		}},
		{Name: "cross-correlation at the start", Fn: func(_ *bt.Loop, ev bt.Event) error {
			if ev.Step == start {
				return heat("c_start.png")
			}
			return nil
		}},
		{Name: "kNN monitor", Every: max(1, ro.monitor.every), AtEnd: true, Fn: func(_ *bt.Loop, ev bt.Event) error {
			if ro.monitor.every <= 0 {
				return nil
			}
			ef := evalFlags{trainN: ro.monitor.trainN, testN: ro.monitor.testN, batch: 256}
			train, classes, err := features(d, model, tf, ef, "train", ef.trainN)
			if err != nil {
				return err
			}
			test, _, err := features(d, model, tf, ef, "test", ef.testN)
			if err != nil {
				return err
			}
			acc, err := bt.KNN(d, train, test, classes, knnK, 0.07)
			if err != nil {
				return err
			}
			fmt.Fprintf(log, "kNN      step %d: k=20 %.2f%%, k=200 %.2f%%\n", ev.Step+1, 100*acc[0], 100*acc[1])
			b, _ := json.Marshal(map[string]any{"step": ev.Step + 1, "knn20": acc[0], "knn200": acc[1]})
			_, err = metrics.Write(append(b, '\n'))
			return err
		}},
		{Name: "loss curve", Every: 200, AtEnd: true, Fn: func(_ *bt.Loop, ev bt.Event) error {
			if len(steps) < 2 {
				return nil
			}
			return report.LossCurve(filepath.Join(dir, "loss.png"), fmt.Sprintf("%s on %s, batch %d", tf.Arch, tf.Data, tf.Batch), steps, losses)
		}},
	}
	if err := loop.Execute(); err != nil {
		progress.done()
		return nil, err
	}
	progress.done()
	if err := heat("c_end.png"); err != nil {
		return nil, err
	}
	if loss != nil { // InfoNCE has no cross-correlation figures
		if st, err := loss.Stats(); err == nil {
			fmt.Fprintf(log, "final    loss %.2f (invariance %.2f, redundancy %.1f), mean C_ii %.3f, mean |C_ij| %.3f\n",
				st.Loss, st.OnDiag, st.OffDiag, st.MeanDiag, st.MeanAbsOff)
		}
	}
	if bad := loader.Skipped(); len(bad) > 0 {
		fmt.Fprintf(log, "skipped  %d bad images (-skip-bad-images), listed above\n", len(bad))
	}
	fmt.Fprintf(log, "wrote    %s: checkpoint.safetensors, metrics.jsonl, loss.png, c_start.png, c_end.png\n", dir)
	ok = true
	tenth := max(1, len(losses)/10)
	res = &pretrainResult{model: model, flags: tf, dir: dir, run: run, steps: len(losses), elapsed: lastEv.Elapsed, pairsPerS: lastEv.PairsPerS}
	if len(losses) > 0 {
		res.lossStart, res.lossEnd = mean32(losses[:tenth]), mean32(losses[len(losses)-tenth:])
	}
	return res, nil
}

// openDir claims the run directory: the checkpoint's run to resume, -out
// replaced with -overwrite, the next free default, or a new -out.
func (ro runOptions) openDir() (*rundir.Dir, error) {
	var (
		d   *rundir.Dir
		err error
	)
	switch {
	case ro.ckpt != nil:
		d, err = rundir.Open(ro.out, rundir.Resume)
	case ro.overwrite:
		d, err = rundir.Open(ro.out, rundir.Overwrite)
	case ro.auto:
		d, err = rundir.OpenNext(ro.out)
	default:
		d, err = rundir.Open(ro.out, rundir.New)
	}
	if errors.Is(err, rundir.ErrBusy) && ro.ckpt == nil {
		err = fmt.Errorf("-out: %w (-resume DIR/checkpoint.safetensors continues it, -overwrite replaces it)", err)
	}
	return d, err
}

// truncateMetrics keeps the lines of a metrics file that come from steps
// up to step (counted from 1, as logged), so a resumed run does not log
// the steps after its checkpoint twice. A missing file is no error.
func truncateMetrics(path string, step int) error {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var kept []byte
	for line := range bytes.Lines(b) {
		var row struct {
			Step *int `json:"step"`
		}
		if err := json.Unmarshal(line, &row); err != nil || row.Step == nil {
			return fmt.Errorf("%s: a line is not a metrics row (%q); move the file away to resume", path, bytes.TrimSpace(line))
		}
		if *row.Step <= step {
			kept = append(kept, line...)
		}
	}
	if len(kept) == len(b) {
		return nil
	}
	return os.WriteFile(path, kept, 0o644)
}

// rssBytes is the process's resident memory, from /proc where there is
// one (0 elsewhere): the device's host-side copies and the loader's images
// live outside Go's heap, so runtime.MemStats would not see them.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0
	}
	return resident * int64(os.Getpagesize())
}

// lastWidth is a projector spec's output width (0 when the spec is bad;
// NewModel reports that).
func lastWidth(spec string) int {
	ws, err := models.ParseSpec(spec)
	if err != nil {
		return 0
	}
	return ws[len(ws)-1]
}

func mean32(v []float32) float64 {
	s := 0.0
	for _, x := range v {
		s += float64(x)
	}
	return s / float64(len(v))
}

// progress shows a bar with ETA, pairs/s and loss on a terminal, and a line
// every few percent elsewhere (CI logs).
type progress struct {
	bar   *progressbar.ProgressBar
	log   io.Writer
	total int
	next  int
}

func newProgress(log io.Writer, total int) *progress {
	p := &progress{log: log, total: total}
	if f, ok := log.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(log), progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) update(ev bt.Event) {
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("loss %8.2f  %6.1f pairs/s", ev.Loss, ev.PairsPerS))
		p.bar.Add(1)
		return
	}
	p.next++
	if p.next == p.total || p.next%max(1, p.total/20) == 0 {
		eta := time.Duration(float64(ev.Elapsed) / float64(p.next) * float64(p.total-p.next)).Round(time.Second)
		fmt.Fprintf(p.log, "step %6d/%d  loss %8.2f  %6.1f pairs/s  elapsed %s  eta %s\n",
			ev.Step+1, ev.Steps, ev.Loss, ev.PairsPerS, ev.Elapsed.Round(time.Second), eta)
	}
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
