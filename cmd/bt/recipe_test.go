package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/bt/train"
)

// TestPretrainRecipe checks which recipe bt pretrain starts from (short
// with a step budget, paper without, -recipe's when given), that flags
// given override the recipe's settings, and that -recipe is refused beside
// -config and -resume, which carry a run's whole recipe.
func TestPretrainRecipe(t *testing.T) {
	short, paper := optim.Warmup{Value: 0.05, Unit: optim.WarmupFraction}, optim.Warmup{Value: 10, Unit: optim.WarmupEpochs}
	for _, c := range []struct {
		args   []string
		recipe train.Recipe
		lr     float64
		warmup optim.Warmup
	}{
		{nil, "paper", 1, paper},
		{[]string{"-steps", "100"}, "short", 32, short},
		{[]string{"-steps", "100", "-lr", "3"}, "short", 3, short},
		{[]string{"-steps", "100", "-warmup", "5"}, "short", 32, optim.Warmup{Value: 5, Unit: optim.WarmupEpochs}},
		{[]string{"-steps", "100", "-recipe", "paper"}, "paper", 1, paper},
		{[]string{"-recipe", "short"}, "short", 32, short},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			cfg, ro, err := parsePretrain(c.args)
			if err != nil {
				t.Fatal(err)
			}
			if ro.recipe != c.recipe || cfg.Schedule.Multiplier != c.lr || cfg.Schedule.Warmup != c.warmup {
				t.Errorf("recipe %q, lr %g, warm-up %v; want %q, %g, %v", ro.recipe, cfg.Schedule.Multiplier, cfg.Schedule.Warmup, c.recipe, c.lr, c.warmup)
			}
		})
	}
	// A -config file's settings are the run's, whatever the budget.
	file := filepath.Join(t.TempDir(), "config.json")
	own := train.DefaultConfig()
	own.Schedule.Multiplier, own.Schedule.Warmup = 0.5, optim.Warmup{Value: 3, Unit: optim.WarmupEpochs}
	b, err := json.Marshal(own)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(file, b, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, ro, err := parsePretrain([]string{"-config", file, "-steps", "100"})
	if err != nil {
		t.Fatal(err)
	}
	if ro.recipe != "" || cfg.Schedule.Multiplier != 0.5 || cfg.Schedule.Warmup.Value != 3 {
		t.Errorf("-config with -steps: recipe %q, lr %g, warm-up %v; want the file's", ro.recipe, cfg.Schedule.Multiplier, cfg.Schedule.Warmup)
	}
	for _, args := range [][]string{
		{"-config", file, "-recipe", "short"},
		{"-resume", filepath.Join(t.TempDir(), "checkpoint.safetensors"), "-recipe", "short"},
		{"-recipe", "long"},
	} {
		if _, _, err := parsePretrain(args); err == nil || !strings.Contains(err.Error(), "-recipe") {
			t.Errorf("%v: got %v, want an error naming -recipe", args, err)
		}
	}
}

// TestRecipeConfig checks the recipe a command takes by default.
func TestRecipeConfig(t *testing.T) {
	for _, c := range []struct {
		name   train.Recipe
		budget bool
		want   train.Recipe
	}{{"", false, "paper"}, {"", true, "short"}, {"paper", true, "paper"}, {"short", false, "short"}} {
		cfg, name := recipeConfig(c.name, c.budget)
		want := train.DefaultConfig()
		if err := want.UseRecipe(c.want); err != nil {
			t.Fatal(err)
		}
		if name != c.want || cfg != want {
			t.Errorf("recipeConfig(%q, %v) = %q, %+v; want %q, %+v", c.name, c.budget, name, cfg, c.want, want)
		}
	}
}
