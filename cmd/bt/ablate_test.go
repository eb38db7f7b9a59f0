package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/eval"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/gputest"
)

// TestAblate runs a two-point grid (the asymmetry family) at a tiny budget
// on Fashion-MNIST, then reruns it: the second run must skip both finished
// runs and give the same table.
func TestAblate(t *testing.T) {
	d := gputest.Device(t)
	dir := t.TempDir()
	tf := train.DefaultConfig()
	tf.Steps, tf.Batch, tf.Epochs, tf.Schedule.Warmup, tf.Model.Projector = 6, 32, 10, optim.Warmup{Value: 1, Unit: optim.WarmupEpochs}, "64-64-64"
	ef := eval.Options{TrainImages: 500, TestImages: 200, Batch: 250}
	ef.Probe.Epochs, ef.Probe.Batch, ef.Probe.LR, ef.Probe.Momentum = 3, 100, 0.3, 0.9
	vs := families["asymmetry"][:2]
	first, err := ablate(t.Context(), d, "asymmetry", vs, tf, ablateOptions{eo: ef, out: dir})
	if err != nil {
		t.Fatal(err)
	}
	if len(first) != 2 {
		t.Fatalf("%d results, want 2", len(first))
	}
	for i, r := range first {
		if r.Variant != vs[i].name || r.Steps != 6 || r.Diverged != "" || !(r.KNN20 > 0) || !(r.Linear > 0) {
			t.Errorf("run %d: %+v", i, r)
		}
	}
	table, err := os.ReadFile(filepath.Join(dir, "ablation.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if !strings.Contains(string(table), v.name) || !strings.Contains(string(table), v.paper) {
			t.Errorf("table lacks %q with the paper's %q:\n%s", v.name, v.paper, table)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "ablation.png")); err != nil || st.Size() == 0 {
		t.Errorf("no plot: %v", err)
	}
	again, err := ablate(t.Context(), d, "asymmetry", vs, tf, ablateOptions{eo: ef, out: dir})
	if err != nil {
		t.Fatal(err)
	}
	for i := range again {
		if again[i] != first[i] {
			t.Errorf("rerun of %q gave %+v, want the saved %+v", vs[i].name, again[i], first[i])
		}
	}
}

// unfitGrid is a grid of one variant that fits no adapter (a 65536-wide
// projector: 16 GiB per weight) at a tiny budget and evaluation: its
// result is saved like any other's without anything trained, which keeps
// the tests of how bt ablate keeps and reads results cheap.
func unfitGrid() (train.Config, eval.Options, []variant) {
	tf := train.DefaultConfig()
	tf.Steps, tf.Batch = 2, 32
	ef := eval.Options{TrainImages: 100, TestImages: 50, Batch: 50}
	return tf, ef, []variant{{"too wide", "", func(c *train.Config) { c.Model.Projector = "65536-65536" }}}
}

// TestAblateUnfit records a variant that fits no adapter (unfitGrid) as
// not fitting, in the table and in its
// result.json, which a rerun reads back instead of trying again.
func TestAblateUnfit(t *testing.T) {
	d := gputest.Device(t)
	dir := t.TempDir()
	tf, ef, vs := unfitGrid()
	for run := range 2 {
		rs, err := ablate(t.Context(), d, "projector", vs, tf, ablateOptions{eo: ef, out: dir})
		if err != nil {
			t.Fatalf("run %d: %v", run, err)
		}
		if len(rs) != 1 || rs[0].Unfit == "" {
			t.Fatalf("run %d: got %+v, want the variant reported as not fitting", run, rs)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "too-wide", "result.json")); err != nil {
		t.Errorf("no saved result: %v", err)
	}
	table, err := os.ReadFile(filepath.Join(dir, "ablation.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(table), "| too wide | | does not fit this adapter |") {
		t.Errorf("table does not say the variant does not fit:\n%s", table)
	}
}

// TestAblateOtherSettings reruns a grid into the same -out: with the same
// settings its result is read back, with other ones (more steps, another
// evaluation) the rerun is refused, naming the directory, rather than
// taking the old figures. unfitGrid keeps it cheap.
func TestAblateOtherSettings(t *testing.T) {
	d := gputest.Device(t)
	dir := t.TempDir()
	tf, ef, vs := unfitGrid()
	first, err := ablate(t.Context(), d, "projector", vs, tf, ablateOptions{eo: ef, out: dir})
	if err != nil {
		t.Fatal(err)
	}
	again, err := ablate(t.Context(), d, "projector", vs, tf, ablateOptions{eo: ef, out: dir})
	if err != nil || len(again) != 1 || again[0] != first[0] {
		t.Fatalf("same settings: %+v, %v; want the saved %+v", again, err, first[0])
	}
	longer, otherEval := tf, ef
	longer.Steps = 3
	otherEval.TestImages = 60
	for _, tc := range []struct {
		name string
		tf   train.Config
		ef   eval.Options
	}{{"steps", longer, ef}, {"evaluation", tf, otherEval}} {
		_, err := ablate(t.Context(), d, "projector", vs, tc.tf, ablateOptions{eo: tc.ef, out: dir})
		if err == nil || !strings.Contains(err.Error(), filepath.Join(dir, "too-wide")) {
			t.Errorf("other %s: %v, want an error naming the variant's directory", tc.name, err)
		}
	}
	// A result.json another variant's name maps to is not taken either.
	clash := []variant{{"too-wide", "", vs[0].apply}}
	if _, err := ablate(t.Context(), d, "projector", clash, tf, ablateOptions{eo: ef, out: dir}); err == nil || !strings.Contains(err.Error(), `the result of "too wide"`) {
		t.Errorf("another variant's result: %v, want it refused", err)
	}
}

// TestAblateReuse checks that -reuse takes a finished run's figures for a
// variant of another grid with the same fingerprint, names it in the
// table, and trains (here: tries) a variant whose fingerprint differs.
// Variants that do not fit (unfitGrid's and a deeper one) keep it cheap.
func TestAblateReuse(t *testing.T) {
	d := gputest.Device(t)
	root := t.TempDir()
	tf, ef, unfit := unfitGrid()
	wide := unfit[0].apply
	first, err := ablate(t.Context(), d, "projector", unfit, tf, ablateOptions{eo: ef, out: filepath.Join(root, "a"), reuse: root})
	if err != nil {
		t.Fatal(err)
	}
	if first[0].SameAs != "" || first[0].Fingerprint == "" {
		t.Fatalf("first grid: %+v, want its own run with its fingerprint", first[0])
	}
	vs := []variant{
		// The preset's smallest crop, given explicitly: the same run.
		{"crop 0.08", "", func(c *train.Config) { wide(c); c.Data.CropMin = 0.08 }},
		{"deeper", "", func(c *train.Config) { c.Model.Projector = "65536-65536-65536" }},
	}
	for run := range 2 { // the second reads the first's saved results
		rs, err := ablate(t.Context(), d, "augment-strength", vs, tf, ablateOptions{eo: ef, out: filepath.Join(root, "b"), reuse: root})
		if err != nil {
			t.Fatal(err)
		}
		if want := filepath.Join("a", "too-wide"); rs[0].SameAs != want || rs[0].Variant != "crop 0.08" || rs[0].Unfit != first[0].Unfit {
			t.Errorf("run %d: %+v, want the figures of %s under its own name", run, rs[0], want)
		}
		if rs[1].SameAs != "" || rs[1].Fingerprint == first[0].Fingerprint || rs[1].Unfit == "" {
			t.Errorf("run %d: %+v, want a run of its own", run, rs[1])
		}
	}
	table, err := os.ReadFile(filepath.Join(root, "b", "ablation.md"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "| crop 0.08 (the run of " + filepath.Join("a", "too-wide") + ") |"; !strings.Contains(string(table), want) {
		t.Errorf("table lacks %q:\n%s", want, table)
	}
	// Without -reuse nothing is taken.
	rs, err := ablate(t.Context(), d, "augment-strength", vs[:1], tf, ablateOptions{eo: ef, out: filepath.Join(root, "c")})
	if err != nil {
		t.Fatal(err)
	}
	if rs[0].SameAs != "" {
		t.Errorf("without -reuse: %+v, want a run of its own", rs[0])
	}
}

// TestFingerprint checks which changes make another run: settings that
// resolve to the same views do not, anything trained or evaluated
// differently does.
func TestFingerprint(t *testing.T) {
	ef := eval.Options{TrainImages: 100, TestImages: 50, Batch: 50}
	base, err := fingerprint(train.DefaultConfig(), ef, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  func(*train.Config)
		ef   func(*eval.Options)
		same bool
	}{
		{"the preset's smallest crop", func(c *train.Config) { c.Data.CropMin = 0.08 }, nil, true},
		{"jitter ×1", func(c *train.Config) { c.Data.Jitter = 1 }, nil, true},
		{"smallest crop 0.2", func(c *train.Config) { c.Data.CropMin = 0.2 }, nil, false},
		{"jitter ×1.5", func(c *train.Config) { c.Data.Jitter = 1.5 }, nil, false},
		{"lr ×3", func(c *train.Config) { c.Schedule.Multiplier = 3 }, nil, false},
		{"seed 2", func(c *train.Config) { c.Seed = 2 }, nil, false},
		{"probe epochs", nil, func(e *eval.Options) { e.Probe.Epochs++ }, false},
		{"all test images", nil, func(e *eval.Options) { e.TestImages = 0 }, false},
		{"a validation split", func(c *train.Config) { c.Data.Validation.Fraction = 0.1 }, nil, false},
		{"its seed", func(c *train.Config) { c.Data.Validation = train.Validation{Fraction: 0.1, Seed: 1} }, nil, false},
	} {
		c, e := train.DefaultConfig(), ef
		if tc.cfg != nil {
			tc.cfg(&c)
		}
		if tc.ef != nil {
			tc.ef(&e)
		}
		got, err := fingerprint(c, e, 0)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if (got == base) != tc.same {
			t.Errorf("%s: same fingerprint %v, want %v", tc.name, got == base, tc.same)
		}
	}
	// Under -minutes the steps are timed anew each time the grid runs: the
	// budget, not the steps it gave, is the run's.
	key := func(steps int, minutes float64) string {
		c := train.DefaultConfig()
		c.Steps = steps
		k, err := fingerprint(c, ef, minutes)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	if two := key(100, 2); two != key(17, 2) || two == key(100, 3) || two == base {
		t.Errorf("budgets: 2 minutes at 100 and 17 steps, 3 minutes, none: %s %s %s %s; want the steps ignored and the budget counted", two, key(17, 2), key(100, 3), base)
	}
}

// TestAblationTable checks that the table states the budget every run had:
// under -minutes each variant's own steps, since the base's steps were
// not what any of them ran.
func TestAblationTable(t *testing.T) {
	cfg := train.Config{Batch: 64, Steps: 100}
	cfg.Data.Name, cfg.Model.Arch = "fashion-mnist", "tiny"
	rs := []ablationResult{
		{Variant: "batch 32", Paper: "-", Steps: 171, KNN20: 0.5, KNN200: 0.4, Linear: 0.6, LossEnd: 12},
		{Variant: "batch 128", Paper: "-", Diverged: "loss NaN"},
	}
	for _, tc := range []struct {
		minutes float64
		want    []string
		not     string
	}{
		{0, []string{"batch 64 unless varied, 100 steps per run;", "Figures on the test split.", "| batch 32 | 171 | 50.0% | 40.0% | 60.0% | 12.0 | - |", "| batch 128 | | diverged |"}, "minutes"},
		{2.5, []string{"batch 64 unless varied, 2.5 minutes per run;", "| batch 32 | 171 | 50.0% |"}, "100 steps"},
	} {
		table := ablationTable("lavapipe", "batch", cfg, tc.minutes, rs)
		for _, w := range tc.want {
			if !strings.Contains(table, w) {
				t.Errorf("minutes %g: table lacks %q:\n%s", tc.minutes, w, table)
			}
		}
		if strings.Contains(table, tc.not) {
			t.Errorf("minutes %g: table says %q:\n%s", tc.minutes, tc.not, table)
		}
	}
	cfg.Data.Validation = train.Validation{Fraction: 0.1, Seed: 2}
	if table := ablationTable("lavapipe", "batch", cfg, 0, rs); !strings.Contains(table, "Figures on the validation split: 10% of the training images, drawn by seed 2") {
		t.Errorf("a grid on a validation split does not say so:\n%s", table)
	}
}

// TestBatchVariantPairs checks that the batch family compares batch sizes
// at an equal number of pairs, not an equal number of steps.
func TestBatchVariantPairs(t *testing.T) {
	for _, tc := range []struct {
		batch, steps int
		lr           float64
	}{{32, 200, 0.7}, {64, 100, 0.7}, {128, 50, 0.7}, {256, 25, 0.4}, {512, 13, 0.3}} {
		c := train.DefaultConfig()
		c.Steps, c.Batch = 100, 64
		batchVariant(tc.batch, tc.lr, "").apply(&c)
		if c.Batch != tc.batch || c.Steps != tc.steps || c.Schedule.Weights != tc.lr {
			t.Errorf("batch %d: got batch %d, %d steps, lr %g; want %d steps, lr %g", tc.batch, c.Batch, c.Steps, c.Schedule.Weights, tc.steps, tc.lr)
		}
	}
}

// TestAblateList: -list prints every variant of the family, numbered as
// -only takes them, and refuses a flag it would ignore.
func TestAblateList(t *testing.T) {
	out, err := btCommand("ablate", "-list", "warmup").Output()
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for i, v := range families["warmup"] {
		want = append(want, fmt.Sprintf("%d\t%s", i+1, v.name))
	}
	if got := strings.Split(strings.TrimSuffix(string(out), "\n"), "\n"); !slices.Equal(got, want) {
		t.Errorf("bt ablate -list warmup printed %q, want %q", got, want)
	}
	for _, extra := range [][]string{{"-only", "1"}, {"-steps", "5"}} {
		out, err := btCommand("ablate", append(append([]string{"-list"}, extra...), "warmup")...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), "flag -list") {
			t.Errorf("bt ablate -list %v: %v, %s; want an error naming -list", extra, err, out)
		}
	}
}

func TestSlug(t *testing.T) {
	for in, want := range map[string]string{
		"λ 0.0051":                    "0.0051",
		"no BN and no normalisation":  "no-bn-and-no-normalisation",
		"crop + blur only":            "crop-blur-only",
		"predictor and stop-gradient": "predictor-and-stop-gradient",
	} {
		if got := slug(in); got != want {
			t.Errorf("slug(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestFamilies: every variant of every family gives a configuration that
// validates, differs from its family's others, and is saved under its own
// directory; the sweep's variants set what their names say.
func TestFamilies(t *testing.T) {
	for name, vs := range families {
		seen, slugs := map[string]string{}, map[string]bool{}
		for _, v := range vs {
			c := train.DefaultConfig()
			c.Steps = 703
			v.apply(&c)
			if err := c.Validate(); err != nil {
				t.Errorf("%s / %s: %v", name, v.name, err)
			}
			js, err := json.Marshal(c)
			if err != nil {
				t.Fatal(err)
			}
			if other, ok := seen[string(js)]; ok {
				t.Errorf("%s: %q and %q run the same configuration", name, other, v.name)
			}
			seen[string(js)] = v.name
			if slugs[slug(v.name)] {
				t.Errorf("%s: two variants saved as %q", name, slug(v.name))
			}
			slugs[slug(v.name)] = true
		}
	}
	for _, tc := range []struct {
		family, variant string
		check           func(c train.Config) bool
	}{
		{"optimizer", "AdamW, rate 0.001", func(c train.Config) bool {
			return c.Optimizer == "adamw" && c.Schedule.Multiplier == 1 && c.Schedule.Weights == 0.001 && c.Schedule.Vectors == 0.001
		}},
		{"optimizer", "SGD, rate 0.004", func(c train.Config) bool {
			return c.Optimizer == "sgd" && c.Schedule.Multiplier == 1 && c.Schedule.Weights == 0.004
		}},
		{"lr", "lr ×4", func(c train.Config) bool { return c.Schedule.Multiplier == 4 }},
		{"warmup", "warm-up 5%", func(c train.Config) bool {
			return c.Schedule.Warmup.Steps(703, c.Epochs) == 35 && c.Schedule.Warmup.Steps(0, c.Epochs) == 0
		}},
		{"augment-strength", "crop 0.2–1", func(c train.Config) bool {
			v, err := c.Data.Views()
			return err == nil && v.A.Scale[0] == 0.2 && v.B.Scale[0] == 0.2
		}},
		{"width-lambda", "width 1024, λ 1/1024", func(c train.Config) bool {
			return c.Model.Projector == "1024-1024-1024" && c.Loss.Lambda == float32(1.0/1024)
		}},
	} {
		i := slices.IndexFunc(families[tc.family], func(v variant) bool { return v.name == tc.variant })
		if i < 0 {
			t.Errorf("%s has no variant %q", tc.family, tc.variant)
			continue
		}
		// A centre at another rate than the paper's, as the sweep's is.
		c := train.DefaultConfig()
		c.Schedule.Multiplier = 8
		families[tc.family][i].apply(&c)
		if !tc.check(c) {
			t.Errorf("%s / %s: configuration %+v", tc.family, tc.variant, c)
		}
	}
	// Each family's variant at the sweep's centre is the centre's run,
	// so that -reuse trains the centre once (docs/quality.md's command:
	// the paper's recipe at ×32 with warm-up over 10%).
	centre := train.DefaultConfig()
	centre.Batch, centre.Steps, centre.Epochs, centre.Model.Projector = 256, 703, 10, "1024-1024-1024"
	centre.Schedule.Warmup, centre.Schedule.Multiplier = optim.Warmup{Value: 1, Unit: optim.WarmupEpochs}, 32
	ef := eval.Options{Batch: 512}
	want, err := fingerprint(centre, ef, 0)
	if err != nil {
		t.Fatal(err)
	}
	for family, name := range map[string]string{"optimizer": "LARS", "lr": "lr ×32", "warmup": "warm-up 10%",
		"augment-strength": "crop 0.08–1, jitter ×1", "width-lambda": "width 1024, λ 0.0051"} {
		i := slices.IndexFunc(families[family], func(v variant) bool { return v.name == name })
		if i < 0 {
			t.Errorf("%s has no variant %q", family, name)
			continue
		}
		c := centre
		families[family][i].apply(&c)
		if got, err := fingerprint(c, ef, 0); err != nil || got != want {
			t.Errorf("%s / %s: not the centre's fingerprint (%v): %+v", family, name, err, c)
		}
	}
}

// TestAblateResume: a grid killed while it trains continues the run from
// its newest checkpoint when run again, and one killed while it evaluates
// evaluates without training again; both give the uninterrupted run's
// figures and losses.
func TestAblateResume(t *testing.T) {
	const steps = 24
	flags := func(out string) []string {
		return []string{"-steps", "24", "-batch", "16", "-projector", "64-64-64", "-workers", "2", "-eval-train", "200", "-eval-test", "100",
			"-probe-epochs", "2", "-checkpoint-every", "4", "-only", "1", "-out", out, "lr"}
	}
	run := slug(families["lr"][0].name)
	result := func(dir string) ablationResult {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, run, "result.json"))
		if err != nil {
			t.Fatal(err)
		}
		var r ablationResult
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r
	}
	same := func(what string, got, want ablationResult, from int) {
		t.Helper()
		if got.ResumedFrom != from {
			t.Errorf("%s: continued from step %d, want %d", what, got.ResumedFrom, from)
		}
		got.Seconds, got.ResumedFrom = want.Seconds, 0
		if got != want {
			t.Errorf("%s: %+v, want the uninterrupted run's %+v", what, got, want)
		}
	}
	root := t.TempDir()
	whole, killed := filepath.Join(root, "whole"), filepath.Join(root, "killed")
	if err := runAblate(flags(whole)); err != nil {
		t.Fatal(err)
	}
	want := result(whole)
	if want.Steps != steps || !(want.KNN20 > 0) || !(want.Linear > 0) || want.Split != train.ValidationSplit {
		t.Fatalf("uninterrupted run: %+v", want)
	}

	killMidRun(t, btCommand("ablate", flags(killed)...), filepath.Join(killed, run), 6)
	c, err := train.LoadCheckpoint(filepath.Join(killed, run, train.Latest))
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Step >= steps {
		t.Fatalf("killed at the end (checkpoint at step %d)", c.State.Step)
	}
	if err := runAblate(flags(killed)); err != nil {
		t.Fatal(err)
	}
	same("killed while training", result(killed), want, c.State.Step)
	wantRows, gotRows := metricsRows(t, filepath.Join(whole, run, "metrics.jsonl")), metricsRows(t, filepath.Join(killed, run, "metrics.jsonl"))
	if len(gotRows) != steps {
		t.Fatalf("continued run's metrics have %d rows, want %d (one per step)", len(gotRows), steps)
	}
	for i := range gotRows {
		if gotRows[i]["step"] != float64(i+1) || gotRows[i]["loss"] != wantRows[i]["loss"] {
			t.Errorf("row %d: step %v loss %v, want step %d loss %v", i, gotRows[i]["step"], gotRows[i]["loss"], i+1, wantRows[i]["loss"])
		}
	}

	// Killed after its last checkpoint, while evaluating: no result yet.
	if err := os.Remove(filepath.Join(whole, run, "result.json")); err != nil {
		t.Fatal(err)
	}
	if err := runAblate(flags(whole)); err != nil {
		t.Fatal(err)
	}
	same("killed while evaluating", result(whole), want, steps)

	// Only the variant's own run is continued: what the data decided and
	// how the views are made may be left open, nothing that trains.
	ran, err := train.LoadCheckpoint(filepath.Join(whole, run, train.Latest))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		change  func(*train.Config)
		minutes float64
		resumes bool
	}{
		{"as the run resolved it", func(*train.Config) {}, 0, true},
		{"stem and channels left to the data", func(c *train.Config) { c.Model.Stem, c.Model.InChannels = "", 0 }, 0, true},
		{"other workers, augmented on the CPU", func(c *train.Config) { c.Data.Workers, c.Data.AugmentOn = 1, "cpu" }, 0, true},
		{"another rate", func(c *train.Config) { c.Schedule.Multiplier *= 2 }, 0, false},
		{"fewer steps", func(c *train.Config) { c.Steps = steps / 2 }, 0, false},
		{"other steps under a budget of minutes", func(c *train.Config) { c.Steps = 1000 }, 2, true},
		{"another rate under a budget of minutes", func(c *train.Config) { c.Schedule.Multiplier *= 2 }, 2, false},
		{"another seed", func(c *train.Config) { c.Seed++ }, 0, false},
	} {
		cfg := ran.State.Config
		tc.change(&cfg)
		c, resolved := unfinished(filepath.Join(whole, run), cfg, tc.minutes)
		if (c != nil) != tc.resumes {
			t.Errorf("%s: continued %v, want %v", tc.name, c != nil, tc.resumes)
		}
		if c != nil && resolved.Steps != ran.State.Config.Steps {
			t.Errorf("%s: continued for %d steps, want the run's %d", tc.name, resolved.Steps, ran.State.Config.Steps)
		}
	}
	if c, _ := unfinished(filepath.Join(root, "none"), ran.State.Config, 0); c != nil {
		t.Error("a directory without a checkpoint: continued")
	}
	damaged := filepath.Join(root, "damaged")
	if err := os.MkdirAll(damaged, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(damaged, train.Latest), []byte("not a checkpoint"), 0o644); err != nil {
		t.Fatal(err)
	}
	if c, _ := unfinished(damaged, ran.State.Config, 0); c != nil {
		t.Error("a damaged checkpoint: continued")
	}
}

// TestAblateResumeBudget stops a grid under a budget of minutes mid-run:
// run again, it continues the run for the steps timed when it started,
// and does not time it anew and start again.
func TestAblateResumeBudget(t *testing.T) {
	out := t.TempDir()
	flags := []string{"-minutes", "0.5", "-batch", "16", "-projector", "64-64-64", "-workers", "2", "-eval-train", "200", "-eval-test", "100",
		"-probe-epochs", "2", "-checkpoint-every", "4", "-only", "1", "-out", out, "lr"}
	run := filepath.Join(out, slug(families["lr"][0].name))
	killMidRun(t, btCommand("ablate", flags...), run, 6)
	c, err := train.LoadCheckpoint(filepath.Join(run, train.Latest))
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Step >= c.State.Config.Steps {
		t.Fatalf("killed at the end (checkpoint at step %d of %d)", c.State.Step, c.State.Config.Steps)
	}
	if err := runAblate(flags); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(run, "result.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r ablationResult
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	if r.ResumedFrom != c.State.Step || r.Steps != c.State.Config.Steps {
		t.Errorf("continued from step %d for %d steps, want from %d for the run's %d", r.ResumedFrom, r.Steps, c.State.Step, c.State.Config.Steps)
	}
}

// TestRecordedFingerprints: the sweep's recorded runs (docs/sweep, on
// the test split) keep their digests for the command that made them
// with -val-fraction 0, so that -reuse still finds them, and a grid on a
// validation split finds none of them.
func TestRecordedFingerprints(t *testing.T) {
	parse := func(val string) (train.Config, eval.Options) {
		cfg, _ := recipeConfig("paper", true)
		var o ablateOptions
		fs := ablateFlags(&cfg, &o)
		if err := fs.Parse([]string{"-recipe", "paper", "-batch", "256", "-projector", "1024-1024-1024", "-epochs", "10", "-warmup", "1",
			"-lr", "32", "-steps", "703", "-probe-epochs", "30", "-eval-train", "0", "-eval-test", "0", "-val-fraction", val, "warmup"}); err != nil {
			t.Fatal(err)
		}
		// As runAblate sets them.
		cfg.Model.Seed, o.eo.Batch = cfg.Seed, 512
		return cfg, o.eo
	}
	for _, v := range families["warmup"][:3] {
		b, err := os.ReadFile(filepath.Join("..", "..", "docs", "sweep", "warmup", slug(v.name), "result.json"))
		if err != nil {
			t.Fatal(err)
		}
		var r ablationResult
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		for _, val := range []string{"0", "0.1"} {
			cfg, ef := parse(val)
			v.apply(&cfg)
			key, err := fingerprint(cfg, ef, 0)
			if err != nil {
				t.Fatal(err)
			}
			if (key == r.Fingerprint) != (val == "0") {
				t.Errorf("%s with -val-fraction %s: fingerprint %s, the recorded run's %s", v.name, val, key, r.Fingerprint)
			}
		}
	}
}
