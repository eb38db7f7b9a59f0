package optim

import (
	"math"
	"testing"
)

func TestScheduleLR(t *testing.T) {
	def := DefaultSchedule()
	short := DefaultSchedule()
	short.Multiplier = 0.5
	noWarm := DefaultSchedule()
	noWarm.Warmup = Warmup{}
	frac := Schedule{Multiplier: 1, Warmup: Warmup{0.5, WarmupEpochs}, EndFactor: 0.01, Weights: 1, Vectors: 0.5}
	third := Schedule{Multiplier: 1, Warmup: Warmup{1, WarmupEpochs}, EndFactor: 0.001, Weights: 1, Vectors: 1}
	// The values are worked out by hand from adjust_learning_rate. The
	// official run shape: batch 512 (base 2), 100 epochs of 100 steps, so
	// 1000 warm-up steps and a 9000-step cosine.
	cases := []struct {
		name                     string
		s                        Schedule
		step, spe, epochs, batch int
		lr                       float64 // before the weights/vectors factors
	}{
		{"start", def, 0, 100, 100, 512, 0},
		{"mid warm-up", def, 500, 100, 100, 512, 1},
		{"last warm-up step", def, 999, 100, 100, 512, 2 * 999.0 / 1000},
		{"end of warm-up", def, 1000, 100, 100, 512, 2},
		{"middle of the cosine", def, 5500, 100, 100, 512, 2*0.5 + 0.002*0.5},
		// q = ½(1 + cos(π·8999/9000)) = sin²(π/18000).
		{"last step", def, 9999, 100, 100, 512, 0.002 + 1.998*math.Pow(math.Sin(math.Pi/18000), 2)},
		{"past the end", def, 10000, 100, 100, 512, 0.002},
		{"far past the end", def, 30000, 100, 100, 512, 0.002},
		// 2 epochs of 10 steps: the 10 warm-up epochs are cut to 20 steps.
		{"short run warming up", short, 10, 10, 2, 256, 0.5 * 10 / 20},
		{"short run last step", short, 19, 10, 2, 256, 0.5 * 19 / 20},
		{"no warm-up start", noWarm, 0, 4, 1, 256, 1},
		{"no warm-up middle", noWarm, 2, 4, 1, 256, 0.5 + 0.001*0.5},
		{"fractional warm-up", frac, 2, 10, 3, 128, 0.5 * 2 / 5},
		{"fractional warm-up ends", frac, 5, 10, 3, 128, 0.5},
		// Warm-up of 3 steps, then a 9-step cosine: step 6 is a third of the
		// way, where q = ½(1 + cos(π/3)) = ¾.
		{"a third down the cosine", third, 6, 3, 4, 256, 0.75 + 0.001*0.25},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			total := c.spe * c.epochs
			w, v := c.s.LR(c.step, c.s.Warmup.Steps(total, c.epochs), total, c.batch)
			for _, x := range []struct {
				what      string
				got, want float64
			}{{"weights", float64(w), c.lr * c.s.Weights}, {"vectors", float64(v), c.lr * c.s.Vectors}} {
				if math.Abs(x.got-x.want) > 1e-6*math.Abs(x.want) {
					t.Errorf("LR(%d, %d, %d, %d) %s = %.9g, want %.9g", c.step, c.spe, c.epochs, c.batch, x.what, x.got, x.want)
				}
			}
		})
	}
}

func TestWarmupText(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Warmup
		ok   bool
	}{
		{"10", Warmup{10, WarmupEpochs}, true},
		{"0.5ep", Warmup{0.5, WarmupEpochs}, true},
		{"10%", Warmup{0.1, WarmupFraction}, true},
		{"500steps", Warmup{500, WarmupSteps}, true},
		{"0", Warmup{0, WarmupEpochs}, true},
		{"-1", Warmup{}, false},
		{"NaN", Warmup{}, false},
		{"150%", Warmup{}, false},
		{"2.5steps", Warmup{}, false},
		{"ten", Warmup{}, false},
	} {
		var w Warmup
		err := w.UnmarshalText([]byte(c.in))
		if (err == nil) != c.ok || (c.ok && w != c.want) {
			t.Errorf("%q: got %+v, %v; want %+v (ok %v)", c.in, w, err, c.want, c.ok)
			continue
		}
		if c.ok {
			var back Warmup
			if err := back.UnmarshalText([]byte(w.String())); err != nil || back != w {
				t.Errorf("%q: %q does not read back (%+v, %v)", c.in, w.String(), back, err)
			}
		}
	}
}

// TestWarmupSteps: warm-up in epochs is the same share of a budgeted run as
// of the full schedule; the other units are taken as they are; none is ever
// longer than the run.
func TestWarmupSteps(t *testing.T) {
	for _, c := range []struct {
		w             Warmup
		total, epochs int
		want          int
	}{
		{Warmup{10, WarmupEpochs}, 10000, 100, 1000}, // the full official run, 100 steps an epoch
		{Warmup{10, WarmupEpochs}, 150, 100, 15},     // a 150-step budget of it: a tenth
		{Warmup{10, WarmupEpochs}, 20, 10, 20},       // warm-up as long as the run
		{Warmup{20, WarmupEpochs}, 20, 10, 20},       // longer: cut to the run
		{Warmup{0.25, WarmupFraction}, 40, 100, 10},
		{Warmup{30, WarmupSteps}, 40, 100, 30},
		{Warmup{300, WarmupSteps}, 40, 100, 40},
	} {
		if got := c.w.Steps(c.total, c.epochs); got != c.want {
			t.Errorf("%v over %d steps of %d epochs: %d warm-up steps, want %d", c.w, c.total, c.epochs, got, c.want)
		}
	}
}
