package bt

import (
	"math"
	"testing"
)

func TestScheduleLR(t *testing.T) {
	def := DefaultSchedule()
	short := DefaultSchedule()
	short.Multiplier = 0.5
	noWarm := DefaultSchedule()
	noWarm.WarmupEpochs = 0
	frac := Schedule{Multiplier: 1, WarmupEpochs: 0.5, EndFactor: 0.01, Weights: 1, Vectors: 0.5}
	third := Schedule{Multiplier: 1, WarmupEpochs: 1, EndFactor: 0.001, Weights: 1, Vectors: 1}
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
			w, v := c.s.LR(c.step, c.spe, c.epochs, c.batch)
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
