package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/train"
)

// TestValidationSplitRun: a run with -val-fraction records its split in
// config.json, its kNN monitor reports on it under its own name, and bt
// eval takes figures on the same split from the checkpoint; a validation
// split is refused where no images were held out, and -val-seed without
// -val-fraction is refused rather than ignored.
func TestValidationSplitRun(t *testing.T) {
	run := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(args("-out", run, "-steps", "4", "-val-fraction", "0.1", "-val-seed", "3", "-knn-every", "2", "-knn-images", "50")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(run, "config.json"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg train.Config
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatal(err)
	}
	// The synthetic set has 10,000 training images.
	if want := (train.Validation{Fraction: 0.1, Seed: 3, Images: 1000}); cfg.Data.Validation != want {
		t.Errorf("config.json records the split as %+v, want %+v", cfg.Data.Validation, want)
	}
	rows := metricsRows(t, filepath.Join(run, "metrics.jsonl"))
	if len(rows) != 4 {
		t.Fatalf("%d rows of metrics, want 4", len(rows))
	}
	for i, r := range rows {
		_, val := r["val_knn20"]
		_, test := r["knn20"]
		if test || val != (i%2 == 1) {
			t.Errorf("row %d: kNN on the validation split %v, on test %v; want the validation split's at steps 2 and 4 only", i+1, val, test)
		}
		for _, f := range []string{"mean_c_ii", "rms_c_ij", "z_std_mean", "z_std_min"} {
			if _, ok := r[f]; !ok {
				t.Errorf("row %d has no %s", i+1, f)
			}
		}
	}
	ckpt := filepath.Join(run, train.Latest)
	for _, c := range []struct {
		args []string
		want string // "" for success
	}{
		{[]string{"-checkpoint", ckpt, "-split", "validation", "-eval-train", "200", "-eval-test", "100", "-workers", "2", "knn"}, ""},
		{[]string{"-checkpoint", ckpt, "-eval-train", "200", "-eval-test", "100", "-workers", "2", "knn"}, ""},
		{[]string{"-random", "-data", "synthetic", "-size", "16", "-split", "validation", "knn"}, "no training images are held out"},
		{[]string{"-checkpoint", ckpt, "-val-seed", "4", "knn"}, "-val-seed draws the images -val-fraction holds out"},
		{[]string{"-checkpoint", ckpt, "-val-fraction", "0", "-val-seed", "4", "knn"}, "-val-seed draws the images -val-fraction holds out"},
		{[]string{"-checkpoint", ckpt, "-split", "train", "knn"}, "flag -split"},
	} {
		err := runEval(c.args)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("bt eval %s: %v, want %q", strings.Join(c.args, " "), err, c.want)
		}
	}
}
