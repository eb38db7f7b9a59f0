package train

import (
	"fmt"
	"math"
)

// Alarm is a kind of Watch's warning.
type Alarm string

const (
	// SpreadCollapse: the embeddings' spread (Spread.Mean), averaged over
	// the window, has fallen below Watch.SpreadFloor of its largest window
	// average: the embeddings are becoming a constant.
	SpreadCollapse Alarm = "spread-collapse"
	// SpreadBlowUp: the spread's average over the window (or the steps
	// so far, shorter) has grown past Watch.SpreadCeiling times the
	// first step's: the weights are diverging, as with a rate far too
	// high, often before the loss overflows. So large a growth needs no
	// full window to tell it from noise.
	SpreadBlowUp Alarm = "spread-blowup"
	// DiagonalFall: mean C_ii, averaged over the window, has fallen below
	// 1 − Watch.DiagonalDrop of its largest window average: the two views'
	// embeddings stop agreeing, as with a rate far too high or without the
	// invariance term.
	DiagonalFall Alarm = "diagonal-fall"
	// DimensionCollapse: C's off-diagonal entries (their root mean square,
	// Stats.RMSOff, less what a batch of Watch.Batch pairs gives
	// uncorrelated dimensions), averaged over the window, have grown to
	// Watch.RedundancyShare of its diagonal's window average: the
	// embedding's dimensions are becoming copies of one another, as
	// without the redundancy-reduction term.
	DimensionCollapse Alarm = "dimension-collapse"
)

// Warning is one alarm raised at a step.
type Warning struct {
	Alarm  Alarm
	Step   int    // the step it was raised at (Event.Step)
	Detail string // the figures that raised it
}

func (w Warning) String() string {
	return fmt.Sprintf("warning  step %d: %s: %s", w.Step+1, w.Alarm, w.Detail)
}

// Default settings of a Watch (NewWatch). A healthy run's figures stay far
// from them: at the short recipe mean C_ii climbs, its window average at
// most a few hundredths below its best, and the spread grows a few-fold
// (TestWatchRuns).
const (
	DefaultWatchWindow     = 20
	DefaultSpreadFloor     = 0.01
	DefaultSpreadCeiling   = 1000
	DefaultDiagonalDrop    = 0.3
	DefaultRedundancyShare = 0.8
)

// Watch warns, while a run trains, that it is collapsing or diverging: it
// follows each step's embedding spread (Event.Spread) and C's figures
// (Event.Terms), each averaged over the last Window steps it has seen,
// since one step's figures are one batch's and noisy. A run whose figures
// are missing (another objective, a loss without batch normalisation) is
// watched on those it has. Install Hook on a Loop before any hook that
// reports Active (a metrics row).
type Watch struct {
	Window          int     // steps averaged
	SpreadFloor     float64 // SpreadCollapse under this share of the largest window average
	SpreadCeiling   float64 // SpreadBlowUp over this multiple of the first
	DiagonalDrop    float64 // DiagonalFall under 1 − this share of the largest window average
	RedundancyShare float64 // DimensionCollapse at this share of the diagonal's
	// Batch is the number of pairs C is taken over: C_ij of uncorrelated
	// dimensions has a root mean square of 1/√Batch, which is taken off
	// before DimensionCollapse compares. 0: Hook takes the Loop's.
	Batch int
	// Warn hears of each alarm when it starts to hold, and not again
	// until it has not held for a window (the figures hover about a
	// bound); nil: none is told.
	Warn func(Warning)

	spread, diag, off ring
	active            []Alarm
	held              map[Alarm]int // the latest step each alarm held at
}

// NewWatch is a Watch with the default settings telling warn.
func NewWatch(warn func(Warning)) *Watch {
	return &Watch{Window: DefaultWatchWindow, SpreadFloor: DefaultSpreadFloor, SpreadCeiling: DefaultSpreadCeiling,
		DiagonalDrop: DefaultDiagonalDrop, RedundancyShare: DefaultRedundancyShare, Warn: warn}
}

// Hook runs Observe every step.
func (w *Watch) Hook() Hook {
	return Hook{Name: "collapse watch", Fn: func(l *Loop, ev Event) error {
		if w.Batch == 0 {
			w.Batch = l.Batch
		}
		w.Observe(ev)
		return nil
	}}
}

// Active is the alarms that hold at the latest step observed.
func (w *Watch) Active() []Alarm { return w.active }

// Observe takes a step's figures and returns the alarms that start to
// hold with it, having told Warn of each.
func (w *Watch) Observe(ev Event) []Warning {
	n := max(1, w.Window)
	if w.held == nil {
		w.held = map[Alarm]int{}
	}
	w.active = nil
	var raised []Warning
	check := func(a Alarm, bad bool, detail func() string) {
		if !bad {
			return
		}
		w.active = append(w.active, a)
		last, held := w.held[a]
		w.held[a] = ev.Step
		if held && ev.Step-last <= n {
			return
		}
		warn := Warning{Alarm: a, Step: ev.Step, Detail: detail()}
		raised = append(raised, warn)
		if w.Warn != nil {
			w.Warn(warn)
		}
	}
	if ev.Spread != nil {
		// A blown-up spread is no reference for a collapse.
		s := w.spread.add(float64(ev.Spread.Mean), n, w.SpreadCeiling)
		check(SpreadCollapse, s.full && s.avg < w.SpreadFloor*s.best, func() string {
			return fmt.Sprintf("the embeddings' per-dimension standard deviation, averaged over the last %d steps, is %.3g, %.2g of its largest %d-step average %.3g (the alarm is under %g of it): they are collapsing to a constant",
				n, s.avg, s.avg/s.best, n, s.best, w.SpreadFloor)
		})
		check(SpreadBlowUp, s.first > 0 && s.avg > w.SpreadCeiling*s.first, func() string {
			return fmt.Sprintf("the embeddings' per-dimension standard deviation, averaged over the last %d steps, is %.3g, %.3g times the first step's %.3g (the alarm is over %g times): the weights are diverging; lower the learning rate",
				s.n, s.avg, s.avg/s.first, s.first, w.SpreadCeiling)
		})
	}
	if t := ev.Terms; t != nil {
		d := w.diag.add(float64(t.MeanDiag), n, math.Inf(1))
		o := w.off.add(float64(t.RMSOff), n, math.Inf(1))
		check(DiagonalFall, d.full && d.avg < (1-w.DiagonalDrop)*d.best, func() string {
			return fmt.Sprintf("mean C_ii, averaged over the last %d steps, is %.3f, down from its largest %d-step average %.3f (the alarm is under %g of it): the two views' embeddings stop agreeing",
				n, d.avg, n, d.best, 1-w.DiagonalDrop)
		})
		// What sampling alone gives uncorrelated dimensions is taken off.
		noise := 0.0
		if w.Batch > 0 {
			noise = 1 / float64(w.Batch)
		}
		off := math.Sqrt(max(0, o.avg*o.avg-noise))
		check(DimensionCollapse, o.full && d.avg > 0 && off >= w.RedundancyShare*d.avg, func() string {
			return fmt.Sprintf("C's off-diagonal entries, averaged over the last %d steps, are %.3f (root mean square; %.3f beyond a batch's sampling noise), %.2f of mean C_ii's %.3f (the alarm is at %g): the embedding's dimensions are becoming copies of one another",
				n, o.avg, off, off/d.avg, d.avg, w.RedundancyShare)
		})
	}
	return raised
}

// ring keeps the last values of a figure.
type ring struct {
	v     []float64
	next  int
	first float64 // the first value
	best  float64 // the largest average of a full window, up to the cap add was given
	full  bool    // best is set
}

// window is a figure's average over its last values.
type window struct {
	avg         float64
	n           int // values averaged
	first, best float64
	full        bool // n is the window's length, and best is set
}

// add puts x in the window of n values and returns its state; a full
// window's average above ceiling times the first value is not taken as
// the best. NaN is left out (the loop stops at a non-finite loss); an
// infinite value is kept, but no reference is taken from it.
func (r *ring) add(x float64, n int, ceiling float64) window {
	if math.IsNaN(x) {
		return window{avg: math.NaN(), n: len(r.v), first: r.first, best: r.best}
	}
	if len(r.v) == 0 && !math.IsInf(x, 0) {
		r.first = x
	}
	if len(r.v) < n {
		r.v = append(r.v, x)
	} else {
		r.v[r.next] = x
		r.next = (r.next + 1) % n
	}
	sum := 0.0
	for _, v := range r.v {
		sum += v
	}
	avg := sum / float64(len(r.v))
	if len(r.v) >= n && !math.IsInf(avg, 0) && !(avg > ceiling*r.first) {
		r.best = max(r.best, avg)
		if !r.full {
			r.best, r.full = avg, true
		}
	}
	return window{avg: avg, n: len(r.v), first: r.first, best: r.best, full: len(r.v) >= n && r.full}
}
