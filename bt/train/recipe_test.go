package train

import (
	"reflect"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/optim"
)

// TestRecipes checks that "paper" is DefaultConfig's recipe, that "short"
// changes only its rate, warm-up and smallest crop, that each recipe sets all of its
// settings (applying one after another leaves nothing of the first), and
// that an unknown name is refused naming the known ones.
func TestRecipes(t *testing.T) {
	paper := DefaultConfig()
	if err := paper.UseRecipe("paper"); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(paper, DefaultConfig()) {
		t.Errorf("the paper's recipe changes DefaultConfig:\n%+v\n%+v", paper, DefaultConfig())
	}
	short := DefaultConfig()
	if err := short.UseRecipe("short"); err != nil {
		t.Fatal(err)
	}
	want := DefaultConfig()
	want.Schedule.Multiplier, want.Schedule.Warmup = 32, optim.Warmup{Value: 0.05, Unit: optim.WarmupFraction}
	want.Data.CropMin = 0.4
	if !reflect.DeepEqual(short, want) {
		t.Errorf("short recipe:\n%+v, want\n%+v", short, want)
	}
	for _, from := range Recipes() {
		for _, to := range Recipes() {
			c := DefaultConfig()
			// Every setting a recipe owns moved away from both recipes.
			c.Optimizer, c.WeightDecay, c.Loss.Lambda = "adamw", 0.1, 0.5
			c.Schedule = optim.Schedule{Multiplier: 7, Warmup: optim.Warmup{Value: 3, Unit: optim.WarmupSteps}, EndFactor: 0.5, Weights: 1, Vectors: 1}
			c.Data.CropMin, c.Data.Jitter = 0.5, 2
			direct := c
			if err := c.UseRecipe(from); err != nil {
				t.Fatal(err)
			}
			if err := c.UseRecipe(to); err != nil {
				t.Fatal(err)
			}
			if err := direct.UseRecipe(to); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(c, direct) {
				t.Errorf("%s then %s: %+v, want %s alone: %+v", from, to, c, to, direct)
			}
		}
	}
	c := DefaultConfig()
	if err := c.UseRecipe("long"); err == nil || !strings.Contains(err.Error(), "paper, short") {
		t.Errorf("unknown recipe: got %v, want an error naming paper, short", err)
	}
}
