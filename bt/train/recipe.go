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
//     -steps, bt demo, bt ablate): the paper's with 32 times the rate and
//     warm-up over the run's first tenth. The rate is the best of
//     docs/quality.md's sweep at 3 epochs (×0.5 to ×32: kNN rose from 76.4%
//     to 84.6% and levelled off from ×16); LARS's relative step is then
//     32 × 0.2 × η 0.001 = 0.0064 of each weight's norm, about
//     solo-learn's (0.3 × η 0.02). docs/quality.md also measures the
//     recipe against the same one in PyTorch, and sweeps the other
//     settings one at a time around it (bt ablate's sweep families).
var Recipes = map[string]func(*Config){
	"paper": paperRecipe,
	"short": func(c *Config) {
		paperRecipe(c)
		c.Schedule.Multiplier = 32
		c.Schedule.Warmup = optim.Warmup{Value: 0.1, Unit: optim.WarmupFraction}
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
