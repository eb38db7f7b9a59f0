package train

import (
	"fmt"
	"sort"
	"strings"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
)

// Recipes are the named optimisation recipes a Config can start from
// (UseRecipe). Each sets the whole recipe, so that applying one after
// another leaves nothing of the first:
//
//   - "paper": the official one, DefaultConfig's: LARS with weight decay
//     1.5e-6, base rate batch/256 with weights at 0.2 and biases and
//     BatchNorm at 0.0048 of it, warm-up over 10 epochs of the schedule
//     (1% of the official 1000), cosine to 0.001, λ 0.0051, the
//     augmentation preset's crops and colour jitter. Tuned for 1000
//     epochs on ImageNet.
//   - "short": for runs of a few epochs, a step budget (bt pretrain
//     -steps, bt demo, bt ablate): the paper's with 32 times the rate,
//     warm-up over the run's first 5% and crops from 0.4 of the image.
//     A short run needs a larger relative step to move the weights far
//     enough (LARS's step is then 32 × 0.2 × η = 0.0064 of each weight's
//     norm, about solo-learn's), and small images lose their object to
//     crops far below half the image. docs/quality.md has the sweep that
//     chose each setting and the runs that measured it.
//
// The projector and λ are the run's own settings, not a recipe's.
var Recipes = map[string]func(*Config){
	"paper": paperRecipe,
	"short": func(c *Config) {
		paperRecipe(c)
		c.Schedule.Multiplier = 32
		c.Schedule.Warmup = optim.Warmup{Value: 0.05, Unit: optim.WarmupFraction}
		c.Data.CropMin = 0.4
	},
}

func paperRecipe(c *Config) {
	c.Optimizer, c.WeightDecay, c.Schedule = "lars", 1.5e-6, optim.DefaultSchedule()
	c.Loss.Lambda = loss.DefaultLambda
	c.Data.CropMin, c.Data.Jitter = 0, 0
}

// RecipeNames lists Recipes' names, sorted.
func RecipeNames() []string {
	var names []string
	for n := range Recipes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// UseRecipe sets c's optimisation recipe to the named one of Recipes.
func (c *Config) UseRecipe(name string) error {
	r, ok := Recipes[name]
	if !ok {
		return fmt.Errorf("train: recipe %q: want one of %s", name, strings.Join(RecipeNames(), ", "))
	}
	r(c)
	return nil
}
