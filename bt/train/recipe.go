package train

import (
	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/internal/enum"
)

// Recipe names an optimisation recipe a Config can start from
// (UseRecipe). Each sets the whole recipe, so that applying one after
// another leaves nothing of the first:
//
//   - PaperRecipe, "paper": the official one, DefaultConfig's: LARS with
//     weight decay 1.5e-6, base rate batch/256 with weights at 0.2 and
//     biases and BatchNorm at 0.0048 of it, warm-up over 10 epochs of the
//     schedule (1% of the official 1000), cosine to 0.001, λ 0.0051, the
//     augmentation preset's crops and colour jitter. Tuned for 1000
//     epochs on ImageNet.
//   - ShortRecipe, "short": for runs of a few epochs, a step budget (bt
//     pretrain -steps, bt demo, bt ablate): the paper's with 32 times the
//     rate, warm-up over the run's first 5% and crops from 0.4 of the
//     image. A short run needs a larger relative step to move the weights
//     far enough (LARS's step is then 32 × 0.2 × η = 0.0064 of each
//     weight's norm, about solo-learn's), and small images lose their
//     object to crops far below half the image. docs/quality.md has the
//     sweep that chose each setting and the runs that measured it.
//
// The projector and λ are the run's own settings, not a recipe's. Its
// text is its name; UnmarshalText refuses any other.
type Recipe string

// The recipes.
const (
	PaperRecipe Recipe = "paper"
	ShortRecipe Recipe = "short"
)

// Recipes lists the recipes, sorted.
func Recipes() []Recipe { return []Recipe{PaperRecipe, ShortRecipe} }

// Check is nil for a recipe's name.
func (r Recipe) Check() error { return enum.Check("train: recipe", r, Recipes()) }

func (r Recipe) String() string { return string(r) }

// MarshalText is r's name.
func (r Recipe) MarshalText() ([]byte, error) { return []byte(r), nil }

// UnmarshalText takes a recipe's name.
func (r *Recipe) UnmarshalText(text []byte) error {
	v, err := enum.Parse("train: recipe", text, Recipes())
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// UseRecipe sets c's optimisation recipe to r.
func (c *Config) UseRecipe(r Recipe) error {
	if err := r.Check(); err != nil {
		return err
	}
	c.Optimizer, c.WeightDecay, c.Schedule = optim.LARS, 1.5e-6, optim.DefaultSchedule()
	c.Loss.Lambda = loss.DefaultLambda
	c.Data.CropMin, c.Data.Jitter = 0, 0
	if r == ShortRecipe {
		c.Schedule.Multiplier = 32
		c.Schedule.Warmup = optim.Warmup{Value: 0.05, Unit: optim.WarmupFraction}
		c.Data.CropMin = 0.4
	}
	return nil
}
