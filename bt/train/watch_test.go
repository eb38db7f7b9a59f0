package train

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/internal/gputest"
)

// TestWatchObserve feeds a Watch made-up figures: steady ones raise
// nothing; a spread that falls 1000-fold, one that grows 10⁴-fold, a
// diagonal that falls to 0.3 from 0.8 and off-diagonal entries that grow
// past the diagonal (beyond a batch's sampling noise) each raise their
// alarm once, when it starts to hold over a full window (the blow-up at
// once), and the alarm ends when the figures recover.
func TestWatchObserve(t *testing.T) {
	const window = 5
	steady := func(step int) Event {
		return Event{Step: step, Terms: &loss.Stats{MeanDiag: 0.8, RMSOff: 0.1}, Spread: &Spread{Mean: 1, Min: 0.5}}
	}
	for _, c := range []struct {
		name   string
		batch  int             // Watch.Batch
		bad    func(ev *Event) // the figures from step 10 to 19
		want   Alarm           // "" for none
		raised int             // the step it is raised at
	}{
		{"steady", 0, func(ev *Event) {}, "", 0},
		{"noise within the bounds", 0, func(ev *Event) {
			ev.Terms.MeanDiag = 0.8 - 0.2*float32(ev.Step%2)
			ev.Spread.Mean = 1 + 5*float32(ev.Step%2)
		}, "", 0},
		{"spread collapse", 0, func(ev *Event) { ev.Spread.Mean = 1e-3 }, SpreadCollapse, 14},
		{"spread blow-up", 0, func(ev *Event) { ev.Spread.Mean = 1e4 }, SpreadBlowUp, 10},
		{"diagonal fall", 0, func(ev *Event) { ev.Terms.MeanDiag = 0.3 }, DiagonalFall, 12},
		{"dimension collapse", 0, func(ev *Event) { ev.Terms.RMSOff = 0.9 }, DimensionCollapse, 13},
		{"dimension collapse beyond a batch's noise", 400, func(ev *Event) { ev.Terms.RMSOff = 0.9 }, DimensionCollapse, 13},
		// Uncorrelated dimensions have C_ij of root mean square 1/√2 in a
		// batch of 2: 0.9 is 0.56 beyond that, under 0.8 of the diagonal.
		{"off-diagonal entries within a batch's noise", 2, func(ev *Event) { ev.Terms.RMSOff = 0.9 }, "", 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			var told []Warning
			w := NewWatch(func(x Warning) { told = append(told, x) })
			w.Window, w.Batch = window, c.batch
			var returned []Warning
			var activeAt []int
			for step := range 40 {
				ev := steady(step)
				if step >= 10 && step < 20 {
					c.bad(&ev)
				}
				returned = append(returned, w.Observe(ev)...)
				if len(w.Active()) > 0 {
					activeAt = append(activeAt, step)
				}
			}
			if c.want == "" {
				if len(told) > 0 || len(activeAt) > 0 {
					t.Fatalf("alarms %v raised at steps %v", told, activeAt)
				}
				return
			}
			if len(told) != 1 || told[0].Alarm != c.want || told[0].Step != c.raised {
				t.Fatalf("told %v, want %s once, at step %d", told, c.want, c.raised)
			}
			if !slices.Equal(returned, told) {
				t.Errorf("Observe returned %v, Warn was told %v", returned, told)
			}
			if !strings.Contains(told[0].String(), string(c.want)) || told[0].Detail == "" {
				t.Errorf("warning %q says nothing of its figures", told[0])
			}
			if activeAt[0] != c.raised || activeAt[len(activeAt)-1] >= 20+window {
				t.Errorf("active at steps %v: want from %d until the window has recovered", activeAt, c.raised)
			}
		})
	}
}

// TestWatchHovering: figures that hover about a bound raise the alarm
// once, not at every crossing, and again only after a window clear of it.
func TestWatchHovering(t *testing.T) {
	var told []Warning
	w := NewWatch(func(x Warning) { told = append(told, x) })
	w.Window = 2
	diag := func(step int) float32 {
		switch {
		case step < 10 || (step >= 30 && step < 40):
			return 0.8
		case step < 30:
			return []float32{0.3, 0.3, 0.8, 0.8}[step%4] // a window average of 0.3, 0.55 or 0.8
		}
		return 0.3
	}
	for step := range 45 {
		w.Observe(Event{Step: step, Terms: &loss.Stats{MeanDiag: diag(step)}})
	}
	if len(told) != 2 || told[0].Step != 12 || told[1].Step != 40 {
		t.Errorf("told %v; want diagonal-fall at steps 12 and 40 only", told)
	}
}

// TestWatchIgnoresNaN checks that a NaN figure (the loop stops at a
// non-finite loss; a hook may still see one) neither raises nor resets an
// alarm, and an infinite spread raises the blow-up.
func TestWatchIgnoresNaN(t *testing.T) {
	w := NewWatch(nil)
	w.Window = 3
	for step := range 6 {
		w.Observe(Event{Step: step, Terms: &loss.Stats{MeanDiag: 0.5, RMSOff: 0.1}, Spread: &Spread{Mean: 1}})
	}
	nan := float32(math.NaN())
	if got := w.Observe(Event{Step: 6, Terms: &loss.Stats{MeanDiag: nan, RMSOff: nan}, Spread: &Spread{Mean: nan}}); len(got) > 0 {
		t.Errorf("NaN figures raised %v", got)
	}
	got := w.Observe(Event{Step: 7, Spread: &Spread{Mean: float32(math.Inf(1))}})
	if len(got) != 1 || got[0].Alarm != SpreadBlowUp {
		t.Errorf("an infinite spread raised %v, want %s", got, SpreadBlowUp)
	}
}

// TestWatchRuns trains tiny runs, seeded, with the default Watch: the
// short recipe raises nothing, while the loss ablations that keep one of
// its two terms and rates far too high raise the alarms their failure
// shows (see docs/quality.md for what each run measured).
func TestWatchRuns(t *testing.T) {
	d := gputest.Device(t)
	for _, c := range []struct {
		name   string
		steps  int
		change func(*Config)
		want   []Alarm // nil: none may be raised
		nonFin bool    // the loss overflows before the end
	}{
		{"short", 150, func(*Config) {}, nil, false},
		{"invariance term only (λ 0)", 150, func(c *Config) { c.Loss.Lambda = 0 }, []Alarm{DimensionCollapse}, false},
		{"redundancy term only", 180, func(c *Config) { c.Loss.RedundancyOnly = true }, []Alarm{DiagonalFall}, false},
		{"rate ×1000", 30, func(c *Config) { c.Schedule.Multiplier *= 1000 }, []Alarm{SpreadBlowUp}, false},
		{"rate ×10⁵", 60, func(c *Config) { c.Schedule.Multiplier *= 1e5 }, []Alarm{SpreadBlowUp}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			cfg := DefaultConfig()
			if err := cfg.UseRecipe("short"); err != nil {
				t.Fatal(err)
			}
			cfg.Data.Name, cfg.Data.Size, cfg.Data.AugmentOn, cfg.Data.Workers = "synthetic", 16, "cpu", 2
			cfg.Model.Projector = "64-64-64"
			cfg.Batch, cfg.Epochs, cfg.Steps = 32, 1, c.steps
			c.change(&cfg)
			run, err := New(d, cfg, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer run.Release()
			var raised []Warning
			w := NewWatch(func(x Warning) { raised = append(raised, x) })
			var last Event
			var evs []Event
			run.Loop.Hooks = []Hook{w.Hook(), {Name: "figures", Fn: func(_ *Loop, ev Event) error {
				evs = append(evs, ev)
				if ev.Step%10 == 9 {
					t.Logf("step %3d: loss %7.2f, mean C_ii %.3f, rms C_ij %.3f, spread %.3g (smallest %.3g), alarms %v",
						ev.Step+1, ev.Loss, ev.Terms.MeanDiag, ev.Terms.RMSOff, ev.Spread.Mean, ev.Spread.Min, w.Active())
				}
				last = ev
				return nil
			}}}
			err = run.Loop.Execute(context.Background())
			if c.nonFin != errors.Is(err, ErrNonFinite) || (err != nil && !c.nonFin) {
				t.Fatalf("the run ended with %v at step %d", err, last.Step+1)
			}
			for _, x := range raised {
				t.Log(x)
			}
			t.Log(closest(evs, w))
			var alarms []Alarm
			for _, x := range raised {
				alarms = append(alarms, x.Alarm)
			}
			if c.want == nil && len(raised) > 0 {
				t.Fatalf("a healthy run raised %v", alarms)
			}
			for _, a := range c.want {
				if !slices.Contains(alarms, a) {
					t.Errorf("%s was not raised (raised: %v)", a, alarms)
				}
			}
		})
	}
}

// closest says how near a run's figures came to each of w's bounds: over
// its full windows, the smallest spread against the largest window
// average before it and the largest against the first step's, the
// lowest mean C_ii against its best, and the largest off-diagonal share.
func closest(evs []Event, w *Watch) string {
	n := w.Window
	if len(evs) < n {
		return fmt.Sprintf("%d steps, fewer than a window of %d", len(evs), n)
	}
	avg := func(f func(Event) float64, end int) float64 {
		s := 0.0
		for _, ev := range evs[end-n : end] {
			s += f(ev)
		}
		return s / float64(n)
	}
	spread := func(ev Event) float64 { return float64(ev.Spread.Mean) }
	diag := func(ev Event) float64 { return float64(ev.Terms.MeanDiag) }
	off := func(ev Event) float64 { return float64(ev.Terms.RMSOff) }
	lowSpread, highSpread, lowDiag, highOff := math.Inf(1), 0.0, math.Inf(1), 0.0
	bestSpread, bestDiag := 0.0, 0.0
	for end := n; end <= len(evs); end++ {
		s, d, o := avg(spread, end), avg(diag, end), avg(off, end)
		bestSpread, bestDiag = max(bestSpread, s), max(bestDiag, d)
		lowSpread, highSpread = min(lowSpread, s/bestSpread), max(highSpread, s/spread(evs[0]))
		lowDiag = min(lowDiag, d/bestDiag)
		highOff = max(highOff, math.Sqrt(max(0, o*o-1/float64(w.Batch)))/d)
	}
	return fmt.Sprintf("closest to the bounds over %d-step windows: spread down to %.3g of its best (alarm under %g), up to %.3g times the first step's (alarm over %g); mean C_ii down to %.3f of its best (alarm under %g); off-diagonal share up to %.3f (alarm at %g)",
		n, lowSpread, w.SpreadFloor, highSpread, w.SpreadCeiling, lowDiag, 1-w.DiagonalDrop, highOff, w.RedundancyShare)
}
