package main

import (
	"flag"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/enum"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
)

// The CLI only maps flags onto a train.Config; the library validates it.
// The flag values below refuse what is out of range as they are parsed,
// so the flag package's error names the flag.

// intFlag is an int flag with a lower bound.
type intFlag struct {
	p   *int
	min int
}

func (f intFlag) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.Itoa(*f.p)
}

func (intFlag) placeholder() string { return "int" }

func (f intFlag) Set(s string) error {
	v, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("not a whole number")
	}
	if v < f.min {
		return fmt.Errorf("must be at least %d", f.min)
	}
	*f.p = v
	return nil
}

// notFlag is a bool flag that sets the negation of what it names, so that
// the setting's zero value is the default: -sync-bn=false sets
// Config.PerRankBatchNorm.
type notFlag struct{ p *bool }

func (f notFlag) String() string   { return strconv.FormatBool(f.p == nil || !*f.p) }
func (f notFlag) IsBoolFlag() bool { return true }

func (f notFlag) Set(s string) error {
	v, err := strconv.ParseBool(s)
	if err != nil {
		return fmt.Errorf("not true or false")
	}
	*f.p = !v
	return nil
}

// floatFlag is a finite float flag at least min (above it when open) and,
// when max > min, at most max.
type floatFlag[T float32 | float64] struct {
	p    *T
	min  float64
	open bool
	max  float64
}

func (f floatFlag[T]) String() string {
	if f.p == nil {
		return "0"
	}
	return strconv.FormatFloat(float64(*f.p), 'g', -1, 64)
}

func (floatFlag[T]) placeholder() string { return "float" }

func (f floatFlag[T]) Set(s string) error {
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return fmt.Errorf("not a number")
	case math.IsNaN(v) || math.IsInf(v, 0):
		return fmt.Errorf("must be a finite number")
	case f.open && v <= f.min:
		return fmt.Errorf("must be more than %g", f.min)
	case v < f.min:
		return fmt.Errorf("must be at least %g", f.min)
	case f.max > f.min && v > f.max:
		return fmt.Errorf("must be at most %g", f.max)
	}
	*f.p = T(v)
	return nil
}

// choiceFlag binds a flag to an enumerated setting (a string type with a
// list of values, train.Precision, optim.Kind, …) and takes one of
// choices: the library's list, with "" where the flag's default leaves
// the choice to the library.
type choiceFlag[T ~string] struct {
	p       *T
	choices []T
}

func (f choiceFlag[T]) String() string {
	if f.p == nil {
		return ""
	}
	return string(*f.p)
}

func (choiceFlag[T]) placeholder() string { return "name" }

func (f choiceFlag[T]) Set(s string) error {
	for _, c := range f.choices {
		if string(c) == s {
			*f.p = c
			return nil
		}
	}
	var names []string
	for _, c := range f.choices {
		names = append(names, string(c))
	}
	return fmt.Errorf("choose one of %s", strings.Join(names, ", "))
}

// recipeConfig is DefaultConfig with the named recipe (train.Recipes),
// or for "" the one a run takes by default: short for a run with a step
// budget, paper for one of whole epochs. It returns the recipe.
func recipeConfig(name train.Recipe, budget bool) (train.Config, train.Recipe) {
	if name == "" {
		name = train.PaperRecipe
		if budget {
			name = train.ShortRecipe
		}
	}
	cfg := train.DefaultConfig()
	if err := cfg.UseRecipe(name); err != nil {
		panic(err) // -recipe accepts only train.Recipes
	}
	return cfg, name
}

// flagGroup is a heading in the help and the flags under it.
type flagGroup struct {
	name  string
	flags []string
}

// registerConfig binds the pretraining flags to c, which holds their
// defaults, and -recipe to recipe, and returns them grouped for the help.
// Seed also seeds the initialisation: the CLI sets c.Model.Seed from
// c.Seed after parsing.
func registerConfig(fs *flag.FlagSet, c *train.Config, recipe *train.Recipe) []flagGroup {
	fs.Var(choiceFlag[train.Recipe]{recipe, append([]train.Recipe{""}, train.Recipes()...)}, "recipe",
		"the optimisation recipe the other flags adjust: paper (the official, tuned for 1000 epochs) or short (the best of docs/quality.md's sweep at a few epochs: train.Recipes) (default: short for a run with a step budget, as bt pretrain -steps, bt demo and bt ablate, else paper)")
	return []flagGroup{registerData(fs, c), registerModel(fs, c), registerLoss(fs, c), registerOptimisation(fs, c)}
}

// registerData binds the flags of the data and its augmentation.
func registerData(fs *flag.FlagSet, c *train.Config) flagGroup {
	fs.Var(choiceFlag[string]{&c.Data.Name, []string{"fashion-mnist", "mnist", "cifar10", "cifar100", "folder", "folder-unlabeled", "synthetic"}},
		"data", "dataset: fashion-mnist, mnist, cifar10, cifar100, folder (class subfolders), folder-unlabeled, synthetic")
	fs.StringVar(&c.Data.Dir, "data-dir", c.Data.Dir, "dataset directory (default "+filepath.Join(pipeline.DefaultDir, "<data>")+")")
	fs.Var(choiceFlag[pipeline.PresetName]{&c.Data.Augment, append([]pipeline.PresetName{""}, pipeline.PresetNames()...)}, "augment", "augmentation preset: imagenet, cifar, fashion-mnist, mnist (default: the dataset's)")
	fs.Var(intFlag{&c.Data.Size, 0}, "size", "image size of the views (default: the preset's)")
	fs.Var(choiceFlag[pipeline.Ablation]{&c.Data.Without, append([]pipeline.Ablation{""}, pipeline.Ablations()...)}, "augment-without", "drop augmentations (an ablation): "+enum.Join(pipeline.Ablations(), ", "))
	fs.Var(floatFlag[float64]{p: &c.Data.CropMin, min: 0, open: true, max: 1}, "crop-min", "smallest area fraction of the random resized crops (default: the recipe's; short: 0.4, paper: the preset's, 0.08)")
	fs.Var(floatFlag[float64]{p: &c.Data.Jitter, min: 0, open: true, max: 5}, "jitter-strength", "multiplies the colour jitter's brightness, contrast, saturation and hue (default: the preset's, 1)")
	fs.Var(intFlag{&c.Data.Workers, 0}, "workers", "data-loading goroutines (default: the number of CPUs)")
	fs.BoolVar(&c.Data.SkipBad, "skip-bad-images", c.Data.SkipBad, "skip images that do not decode (each logged once and counted) instead of stopping at the first")
	fs.Var(floatFlag[float64]{p: &c.Data.MaxBadFraction, min: 0, open: false, max: 1}, "max-bad-fraction", "with -skip-bad-images, stop once more than this share of the images tried is bad")
	fs.Var(choiceFlag[train.AugmentPlace]{&c.Data.AugmentOn, train.AugmentPlaces()}, "augment-on", "where the views are augmented: cpu (the loader's workers), device (the GPU, from 8-bit images), auto (the device unless the adapter is a CPU)")
	fs.Var(intFlag{&c.Data.MaxPixels, -1}, "max-pixels", "refuse images with more pixels than this, read from their header before decoding (-1: no limit)")
	fs.Var(floatFlag[float64]{p: &c.Data.Validation.Fraction, min: 0, open: false, max: 0.9}, "val-fraction",
		"share of the training images held out of pretraining and of the probes' training as a validation split, for choosing settings (bt ablate's figures and the kNN monitor are taken on it; the test split is for final figures) (default: 0 for bt pretrain, 0.1 for bt ablate)")
	fs.Uint64Var(&c.Data.Validation.Seed, "val-seed", c.Data.Validation.Seed, "seed that draws the validation split's images (its own, so that runs of several -seed share one split)")
	return flagGroup{"data", []string{"data", "data-dir", "augment", "size", "augment-without", "crop-min", "jitter-strength", "workers", "augment-on", "skip-bad-images", "max-bad-fraction", "max-pixels", "val-fraction", "val-seed"}}
}

// registerModel binds the flags of the network and its arithmetic.
func registerModel(fs *flag.FlagSet, c *train.Config) flagGroup {
	archs := make([]string, len(models.Archs))
	copy(archs, models.Archs)
	fs.Var(choiceFlag[string]{&c.Model.Arch, archs}, "arch", "backbone: "+strings.Join(models.Archs, ", "))
	fs.Var(choiceFlag[models.Stem]{&c.Model.Stem, []models.Stem{"", models.ImageNetStem, models.SmallStem}}, "stem", "backbone stem: imagenet or small (default: small for tiny and images under 64 px, else imagenet)")
	fs.TextVar(&c.Model.Projector, "projector", c.Model.Projector, "projector widths; the paper uses 8192-8192-8192")
	fs.BoolVar(&c.Model.NoBN, "projector-no-bn", c.Model.NoBN, "drop the projector's BatchNorms (an ablation)")
	fs.BoolVar(&c.Model.Predictor, "predictor", c.Model.Predictor, "add a predictor (2 layers, BatchNorm and ReLU between) on one branch (an asymmetry ablation)")
	if c.Precision == "" {
		c.Precision = train.F32
	}
	fs.Var(choiceFlag[train.Precision]{&c.Precision, train.Precisions()}, "precision", "f32, or f16: mixed precision, activations and their gradients stored as f16, the arithmetic, parameters, optimiser state, BatchNorm statistics and the loss in f32 (adapters with shader-f16; bt devices lists the features)")
	fs.Var(floatFlag[float64]{p: &c.LossScale, min: 0, open: false}, "loss-scale", "multiply the loss's gradient by this on its way into the network and divide the parameters' gradients by it (0: 1024 with -precision f16, else 1), so that small gradients stay normal f16 numbers")
	fs.Var(notFlag{&c.PerRankBatchNorm}, "sync-bn", "over several processes (mpirun), BatchNorm statistics of the whole global batch, as the official SyncBatchNorm; -sync-bn=false keeps each rank's own, a different model")
	return flagGroup{"model", []string{"arch", "stem", "projector", "projector-no-bn", "predictor", "sync-bn", "precision", "loss-scale"}}
}

// registerLoss binds the flags of the objective.
func registerLoss(fs *flag.FlagSet, c *train.Config) flagGroup {
	fs.Var(floatFlag[float32]{p: &c.Loss.Lambda, min: 0, open: false}, "lambda", "weight of the redundancy-reduction term")
	fs.Var(floatFlag[float32]{p: &c.Loss.Scale, min: 0, open: true}, "scale-loss", "multiplies the loss (solo-learn's CIFAR recipe uses 0.1)")
	fs.Func("fused", "loss path: auto, on (never forms C), off (materialises C)", func(s string) error {
		p, ok := map[string]loss.Path{"auto": loss.Auto, "on": loss.Fused, "off": loss.Materialised}[s]
		if !ok {
			return fmt.Errorf("want auto, on or off")
		}
		c.Loss.Path = p
		return nil
	})
	normFlag := func(name string, n loss.Norm, usage string) {
		fs.BoolFunc(name, usage, func(s string) error {
			on, err := strconv.ParseBool(s)
			if err != nil {
				return err
			}
			if on {
				if c.Loss.Norm != loss.BatchNorm && c.Loss.Norm != n {
					return fmt.Errorf("the loss normalises one way or not at all: -feature-normalisation and -no-normalisation exclude each other")
				}
				c.Loss.Norm = n
			} else if c.Loss.Norm == n {
				c.Loss.Norm = loss.BatchNorm
			}
			return nil
		})
	}
	normFlag("feature-normalisation", loss.FeatureNorm, "normalise each embedding over its features instead of each feature over the batch (an ablation)")
	normFlag("no-normalisation", loss.NoNorm, "use the embeddings without batch normalisation in the loss (an ablation, with -projector-no-bn)")
	fs.BoolVar(&c.Loss.RedundancyOnly, "redundancy-only", c.Loss.RedundancyOnly, "drop the invariance term of the loss (an ablation)")
	fs.Var(floatFlag[float64]{p: &c.InfoNCE, min: 0, open: false}, "infonce", "train with the cross-entropy at this temperature (InfoNCE) instead of the Barlow Twins loss: the paper's comparison (0: Barlow Twins)")
	fs.BoolVar(&c.StopGradient, "stop-gradient", c.StopGradient, "stop the gradient through the second branch (an asymmetry ablation)")
	return flagGroup{"loss", []string{"lambda", "scale-loss", "fused", "feature-normalisation", "no-normalisation", "redundancy-only", "infonce", "stop-gradient"}}
}

// registerOptimisation binds the flags of the optimiser, its schedule
// and the run's length, beside -recipe (registerConfig).
func registerOptimisation(fs *flag.FlagSet, c *train.Config) flagGroup {
	fs.Var(choiceFlag[optim.Kind]{&c.Optimizer, optim.Kinds()}, "optimizer", "optimiser: "+enum.Join(optim.Kinds(), ", "))
	fs.Var(floatFlag[float64]{p: &c.Schedule.Multiplier, min: 0, open: true}, "lr", "learning-rate multiplier: the base rate is lr·batch/256")
	fs.Var(floatFlag[float64]{p: &c.Schedule.Weights, min: 0, open: false}, "lr-weights", "weights' share of the rate")
	fs.Var(floatFlag[float64]{p: &c.Schedule.Vectors, min: 0, open: false}, "lr-biases", "biases' and BatchNorm's share of the rate")
	fs.Var(floatFlag[float64]{p: &c.WeightDecay, min: 0, open: false}, "wd", "weight decay")
	fs.TextVar(&c.Schedule.Warmup, "warmup", c.Schedule.Warmup, "warm-up: epochs of the full schedule (10; a -steps budget warms up over the same share of its steps), a share of the run (10%), or steps (500steps)")
	fs.Var(intFlag{&c.Batch, 2}, "batch", "batch size (pairs per step)")
	fs.Var(intFlag{&c.Epochs, 1}, "epochs", "epochs; the schedule spans them")
	fs.Var(intFlag{&c.Steps, 0}, "steps", "stop after this many steps, with the whole schedule compressed to fit (0: all epochs)")
	fs.Uint64Var(&c.Seed, "seed", c.Seed, "seed of the initialisation, the data order and the augmentations")
	return flagGroup{"optimisation", []string{"recipe", "optimizer", "lr", "lr-weights", "lr-biases", "wd", "warmup", "batch", "epochs", "steps", "seed"}}
}
