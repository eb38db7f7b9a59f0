// Package tune chooses kernel variants by timing them on the adapter a run
// lands on, and keeps the choices in a small cache file, so that every GPU
// gets the tiles that are fastest on it rather than tiles measured on
// another. It times the candidates of each class of product a run records
// (gpu.Device.CollectGemms), with a warm-up and repeats, within a stated
// budget, and keeps a candidate only where it beats bt's built-in choice by
// a margin, so a tuned run is never slower than an untuned one by more than
// the noise of the timing.
package tune

import (
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/bt-org/bt/gpu"
)

// Timer times a case's product with a tile, reps times in one submission.
// *gpu.Device is one; tests use a fake.
type Timer interface {
	TimeGemm(c gpu.GemmCase, tile gpu.GemmTile, reps int) (time.Duration, error)
}

// Clock reads the time the budget is counted in.
type Clock interface{ Now() time.Time }

type wallClock struct{}

func (wallClock) Now() time.Time { return time.Now() }

// Options bound a tuning.
type Options struct {
	// Budget is the time tuning may take in all; each class gets an equal
	// share of what is left when its turn comes, its built-in tile always
	// timed. 0 means DefaultBudget.
	Budget time.Duration
	// MinTime is how long one timing runs at least: the repetitions of a
	// product in a submission grow until it does. 0 means 20 ms.
	MinTime time.Duration
	// Repeats is how many timings of each candidate are taken; the fastest
	// counts. 0 means 3.
	Repeats int
	// Margin is how much faster than the built-in tile a candidate must be
	// to be chosen: 0.03 is 3%. Negative means 0.
	Margin float64
	// Clock counts the budget; nil means the wall clock.
	Clock Clock
	// Log, when set, gets a line per class.
	Log io.Writer
}

// DefaultBudget is the time a tuning takes at most unless told.
const DefaultBudget = 5 * time.Minute

// DefaultMargin keeps a built-in tile unless a candidate beats it by 3%.
const DefaultMargin = 0.03

func (o Options) withDefaults() Options {
	if o.Budget == 0 {
		o.Budget = DefaultBudget
	}
	if o.MinTime == 0 {
		o.MinTime = 20 * time.Millisecond
	}
	if o.Repeats == 0 {
		o.Repeats = 3
	}
	o.Margin = max(o.Margin, 0)
	if o.Clock == nil {
		o.Clock = wallClock{}
	}
	return o
}

// Choice is the outcome of tuning one class.
type Choice struct {
	Case    gpu.GemmCase
	Builtin gpu.GemmTile
	Tile    gpu.GemmTile // the chosen tile: Builtin unless a candidate beat it by the margin
	// BuiltinSeconds and Seconds are one run of the case's product with
	// each tile, the fastest of the repeats.
	BuiltinSeconds, Seconds float64
	Tried                   int // candidates timed, the built-in one included
}

// GFLOPS is the chosen tile's rate on the case.
func (c Choice) GFLOPS() float64 { return c.Case.Flops() / c.Seconds / 1e9 }

// Speedup is the built-in tile's time over the chosen one's.
func (c Choice) Speedup() float64 { return c.BuiltinSeconds / c.Seconds }

func (c Choice) String() string {
	return fmt.Sprintf("%-34v %8.1f GFLOP/s ×%.2f of built-in (%d tried): %+v", c.Case.Class, c.GFLOPS(), c.Speedup(), c.Tried, c.Tile)
}

// Gemms times the candidates of every case's class and returns a choice per
// case. candidates lists a class's tiles, its built-in tile first (as
// gpu.Device.GemmTiles does). A candidate that fails to run is skipped; a
// built-in tile that fails is an error.
func Gemms(tm Timer, cases []gpu.GemmCase, candidates func(gpu.GemmClass) []gpu.GemmTile, opts Options) ([]Choice, error) {
	o := opts.withDefaults()
	out := make([]Choice, 0, len(cases))
	err := search(o, cases, func(c gpu.GemmCase) (fmt.Stringer, []gpu.GemmTile) { return c.Class, candidates(c.Class) }, tm.TimeGemm,
		func(c gpu.GemmCase, r result[gpu.GemmTile]) {
			ch := Choice{Case: c, Builtin: r.builtin, Tile: r.chosen, BuiltinSeconds: r.builtinSec, Seconds: r.sec, Tried: r.tried}
			if o.Log != nil {
				fmt.Fprintln(o.Log, ch)
			}
			out = append(out, ch)
		})
	return out, err
}

// result is search's outcome for one class: the built-in candidate, the
// chosen one and their seconds per run, and how many were timed.
type result[V any] struct {
	builtin, chosen V
	builtinSec, sec float64
	tried           int
}

// search times each case's candidates (the built-in one first) with
// timeFn, within o's budget, and hands done each case's result: the
// fastest candidate where it beats the built-in one by the margin, else
// the built-in one. A candidate that fails to run is skipped; a built-in
// one that fails is an error.
func search[C any, V comparable](o Options, cases []C, candidates func(C) (fmt.Stringer, []V),
	timeFn func(C, V, int) (time.Duration, error), done func(C, result[V])) error {
	start := o.Clock.Now()
	for i, c := range cases {
		class, vs := candidates(c)
		if len(vs) == 0 {
			return fmt.Errorf("tune: no candidates for %v", class)
		}
		left := o.Budget - o.Clock.Now().Sub(start)
		share := left / time.Duration(len(cases)-i)
		classStart := o.Clock.Now()
		run := func(v V, reps int) (time.Duration, error) { return timeFn(c, v, reps) }
		reps, err := repsFor(run, vs[0], o)
		if err != nil {
			return fmt.Errorf("tune: %v with its built-in choice %+v: %w", class, vs[0], err)
		}
		builtin, err := fastest(run, vs[0], reps, o.Repeats)
		if err != nil {
			return fmt.Errorf("tune: %v with its built-in choice %+v: %w", class, vs[0], err)
		}
		r := result[V]{builtin: vs[0], chosen: vs[0], builtinSec: builtin, sec: builtin, tried: 1}
		best, bestV := builtin, vs[0]
		for _, v := range vs[1:] {
			if o.Clock.Now().Sub(classStart) >= share {
				break
			}
			s, err := fastest(run, v, reps, o.Repeats)
			r.tried++
			if err != nil {
				continue
			}
			if s < best {
				best, bestV = s, v
			}
		}
		if best < builtin/(1+o.Margin) {
			r.chosen, r.sec = bestV, best
		}
		done(c, r)
	}
	return nil
}

// repsFor is how many runs of the case make one timing last MinTime with
// candidate v (at least 1, at most 1024).
func repsFor[V any](run func(V, int) (time.Duration, error), v V, o Options) (int, error) {
	reps := 1
	for {
		d, err := run(v, reps)
		if err != nil {
			return 0, err
		}
		if d >= o.MinTime || reps >= 1024 {
			return reps, nil
		}
		if d <= 0 {
			reps *= 8
		} else {
			reps = min(1024, max(2*reps, int(float64(reps)*float64(o.MinTime)/float64(d))+1))
		}
	}
}

// fastest is the seconds of one run, the fastest of repeats timings.
func fastest[V any](run func(V, int) (time.Duration, error), v V, reps, repeats int) (float64, error) {
	best := 0.0
	for i := range repeats {
		d, err := run(v, reps)
		if err != nil {
			return 0, err
		}
		if d <= 0 {
			return 0, errors.New("tune: a timing of zero length")
		}
		if s := d.Seconds() / float64(reps); i == 0 || s < best {
			best = s
		}
	}
	return best, nil
}

// Tuning is the choices as the device takes them, one tile or variant per
// class, built-in ones included, so that a run can tell a class that was
// tuned from one that never was.
func Tuning(gemms []Choice, kernels []KernelChoice) gpu.Tuning {
	t := gpu.Tuning{Gemm: map[gpu.GemmClass]gpu.GemmTile{}, Kernels: map[gpu.KernelClass]gpu.KernelVariant{}}
	for _, c := range gemms {
		t.Gemm[c.Case.Class] = c.Tile
	}
	for _, c := range kernels {
		t.Kernels[c.Case.Class] = c.Variant
	}
	return t
}
