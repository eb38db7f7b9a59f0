package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"time"

	"github.com/bt-org/bt/bench"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/bt/tune"
	"github.com/bt-org/bt/gpu"
)

// tuneSource is where a command's kernel choices come from: -tune auto
// (the cache file, when it has choices for this adapter and build), off
// (bt's built-in choices), or a file, which must have them.
type tuneSource struct {
	off  bool
	file string // "" with off unset: auto
}

func (t *tuneSource) String() string {
	switch {
	case t == nil || !t.off && t.file == "":
		return "auto"
	case t.off:
		return "off"
	}
	return t.file
}

func (t *tuneSource) Set(s string) error {
	switch s {
	case "":
		return errors.New("want auto, off or a tuning file")
	case "auto":
		*t = tuneSource{}
	case "off":
		*t = tuneSource{off: true}
	default:
		if _, err := os.Stat(s); err != nil {
			return fmt.Errorf("tuning file: %w", err)
		}
		*t = tuneSource{file: s}
	}
	return nil
}

func (*tuneSource) placeholder() string { return "auto|off|FILE" }

// register adds -tune to a command's flags.
func (t *tuneSource) register(fs *flag.FlagSet) {
	fs.Var(t, "tune", "kernel choices: auto (those bt tune stored for this adapter and build, if any), off (bt's built-in ones), or a file written by bt tune -out")
}

// apply gives the device the choices t names and says in one line where
// its kernels' tiles come from. Under auto a missing, foreign, stale or
// damaged cache is passed over with that line; a file given by name must
// hold choices for this adapter and build.
func (t *tuneSource) apply(d *gpu.Device, w io.Writer) error {
	if t.off {
		fmt.Fprintln(w, "tuning: off, built-in kernel tiles")
		return nil
	}
	path := t.file
	if path == "" {
		var err error
		if path, err = tune.DefaultPath(); err != nil {
			fmt.Fprintf(w, "tuning: none, built-in kernel tiles (%v)\n", err)
			return nil
		}
	}
	tuned, err := tune.Use(d, path, buildVersion())
	switch {
	case err == nil:
		fmt.Fprintf(w, "tuning: %s from %s\n", tune.Summary(tuned), path)
	case t.file != "":
		return err
	case errors.Is(err, tune.ErrNoEntry):
		fmt.Fprintf(w, "tuning: none for this adapter and build, built-in kernel tiles ('bt tune' measures them)\n")
	default:
		fmt.Fprintf(w, "tuning: ignored, built-in kernel tiles: %v\n", err)
	}
	return nil
}

// buildVersion is bt's version as the tuning cache keys it: the module's
// version, or the commit it was built from (with "+dirty" for a modified
// tree), or "devel".
func buildVersion() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	v := info.Main.Version
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+dirty"
			}
		}
	}
	if (v == "" || v == "(devel)") && rev != "" {
		return rev + dirty
	}
	if v == "" {
		return "devel"
	}
	return v
}

func runTune(args []string) error {
	fs, adapter := newFlags("tune", "Times the candidate tiles of every GEMM and convolution product, and the candidate workgroups of the\nelementwise, reduction, BatchNorm and loss kernels, that one training step of the given network records,\non this adapter, keeps the fastest of each class where it beats bt's built-in choice, and stores the\nchoices in the cache file that pretrain, eval and bench read (-tune auto), keyed by adapter, driver and bt's build.")
	arch := fs.String("arch", "tiny", "backbone whose products are tuned")
	batch := fs.Int("batch", 256, "batch of the step (pairs)")
	size := fs.Int("size", 28, "image size of the step (grayscale)")
	projector := new(train.Projector)
	fs.TextVar(projector, "projector", train.Projector("512-512-512"), "projector of the step")
	budget := fs.Duration("budget", tune.DefaultBudget, "time tuning may take at most; each class's built-in tile is always timed")
	margin := fs.Float64("margin", tune.DefaultMargin, "how much faster than the built-in tile a candidate must be to be chosen (0.03: 3%)")
	out := fs.String("out", "", "file to store the choices in (default: the user's cache directory, which -tune auto reads)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q: bt tune takes flags only", fs.Args())
	}
	if *budget <= 0 || *margin < 0 {
		return fmt.Errorf("-budget %v and -margin %g: want a budget > 0 and a margin ≥ 0", *budget, *margin)
	}
	path := *out
	if path == "" {
		var err error
		if path, err = tune.DefaultPath(); err != nil {
			return err
		}
	}
	d, err := gpu.Open(gpu.Options{Adapter: *adapter})
	if err != nil {
		return err
	}
	defer d.Release()
	fmt.Printf("adapter: %s\n", d.Info)
	cases, kcases, err := bench.TwinCases(d, *arch, *batch, *size, *projector, gpu.F32)
	if err != nil {
		return err
	}
	fmt.Printf("tuning %d classes of product and %d of other kernels of a %s step (batch %d, %d px, projector %s) within %v\n",
		len(cases), len(kcases), *arch, *batch, *size, *projector, *budget)
	start := time.Now()
	// The budget is shared out by classes: each gets an equal part.
	gemmBudget := *budget * time.Duration(len(cases)) / time.Duration(max(len(cases)+len(kcases), 1))
	choices, err := tune.Gemms(d, cases, d.GemmTiles, tune.Options{Budget: gemmBudget, Margin: *margin, Log: os.Stdout})
	if err != nil {
		return err
	}
	fam := tune.Families{D: d}
	kchoices, err := tune.Kernels(fam, kcases, fam.Variants, tune.Options{Budget: max(*budget-time.Since(start), time.Nanosecond), Margin: *margin, Log: os.Stdout})
	if err != nil {
		return err
	}
	var before, after float64
	changed := 0
	for _, c := range choices {
		before += c.BuiltinSeconds
		after += c.Seconds
		if c.Tile != c.Builtin {
			changed++
		}
	}
	fmt.Printf("%d of %d classes take a tuned tile; one run of each product: %.2f ms tuned, %.2f ms built-in (×%.2f)\n",
		changed, len(choices), 1e3*after, 1e3*before, before/after)
	before, after, changed = 0, 0, 0
	for _, c := range kchoices {
		before += c.BuiltinSeconds
		after += c.Seconds
		if c.Variant != c.Builtin {
			changed++
		}
	}
	fmt.Printf("%d of %d kernel classes take a tuned variant; one run of each: %.2f ms tuned, %.2f ms built-in (×%.2f)\n",
		changed, len(kchoices), 1e3*after, 1e3*before, before/max(after, 1e-12))
	fmt.Printf("tuned in %v\n", time.Since(start).Round(time.Second))
	if err := tune.Save(path, tune.KeyOf(d, buildVersion()), tune.Tuning(choices, kchoices)); err != nil {
		return err
	}
	fmt.Printf("stored in %s\n", path)
	return nil
}
