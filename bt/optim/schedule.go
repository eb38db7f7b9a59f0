package optim

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Schedule is the official Barlow Twins learning-rate schedule
// (adjust_learning_rate in facebookresearch/barlowtwins main.py): the base
// rate Multiplier·batch/256 rises linearly over the warm-up, counted per
// step, then follows a cosine down to EndFactor·base at the last step.
// Weights take Weights times the rate and vectors (biases and BatchNorm's
// γ and β) Vectors times it.
//
// A run cut short by a step budget keeps the schedule's shape, not its
// length in epochs: warm-up given in epochs is the same fraction of the
// budget as of the full run, and the cosine ends at the budget's last step.
// Otherwise a short run would spend all of it warming up and never decay.
type Schedule struct {
	Multiplier float64 `json:"lr"` // scales batch/256; the official code has 1
	Warmup     Warmup  `json:"warmup"`
	EndFactor  float64 `json:"end_factor"` // the final rate as a fraction of the base
	Weights    float64 `json:"lr_weights"` // learning_rate_weights
	Vectors    float64 `json:"lr_biases"`  // learning_rate_biases
}

// DefaultSchedule is the official one: 10 warm-up epochs, decay to 0.001 of
// the base, weights 0.2 and biases and BatchNorm 0.0048 of the rate.
func DefaultSchedule() Schedule {
	return Schedule{Multiplier: 1, Warmup: Warmup{10, WarmupEpochs}, EndFactor: 0.001, Weights: 0.2, Vectors: 0.0048}
}

// WarmupUnit is what a Warmup's value counts.
type WarmupUnit int

const (
	WarmupEpochs   WarmupUnit = iota // epochs of the full schedule
	WarmupFraction                   // a fraction of the run's steps
	WarmupSteps                      // steps
)

// Warmup is the warm-up's length: "10" (epochs), "10%" (of the run) or
// "500steps". It reads and writes that text form, so it serves as a flag
// (flag.TextVar) and in JSON.
type Warmup struct {
	Value float64
	Unit  WarmupUnit
}

func (w Warmup) String() string {
	switch w.Unit {
	case WarmupFraction:
		return strconv.FormatFloat(100*w.Value, 'g', -1, 64) + "%"
	case WarmupSteps:
		return strconv.FormatFloat(w.Value, 'g', -1, 64) + "steps"
	}
	return strconv.FormatFloat(w.Value, 'g', -1, 64)
}

// MarshalText implements encoding.TextMarshaler.
func (w Warmup) MarshalText() ([]byte, error) { return []byte(w.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (w *Warmup) UnmarshalText(b []byte) error {
	s := strings.TrimSpace(string(b))
	unit, scale := WarmupEpochs, 1.0
	if v, ok := strings.CutSuffix(s, "%"); ok {
		s, unit, scale = v, WarmupFraction, 0.01
	} else if v, ok := strings.CutSuffix(s, "steps"); ok {
		s, unit = v, WarmupSteps
	} else if v, ok := strings.CutSuffix(s, "ep"); ok {
		s = v
	}
	v, err := strconv.ParseFloat(s, 64)
	switch {
	case err != nil:
		return fmt.Errorf("warm-up %q: want epochs (10), a share of the run (10%%) or steps (500steps)", b)
	case math.IsNaN(v) || math.IsInf(v, 0) || v < 0:
		return fmt.Errorf("warm-up %q: must be a finite number ≥ 0", b)
	case unit == WarmupFraction && v > 100:
		return fmt.Errorf("warm-up %q: a share of the run is at most 100%%", b)
	case unit == WarmupSteps && v != math.Trunc(v):
		return fmt.Errorf("warm-up %q: steps are whole", b)
	}
	*w = Warmup{v * scale, unit}
	return nil
}

// Steps is the warm-up's length in steps for a run of total steps whose
// full schedule is epochs epochs long; never more than the run.
func (w Warmup) Steps(total, epochs int) int {
	var n float64
	switch w.Unit {
	case WarmupEpochs:
		n = w.Value / float64(max(epochs, 1)) * float64(total)
	case WarmupFraction:
		n = w.Value * float64(total)
	case WarmupSteps:
		n = w.Value
	}
	return max(min(int(math.Round(n)), total), 0)
}

// LR returns the learning rates for step (counted from 0 over the whole
// run) of a run of total steps whose first warm steps warm up, at the given
// batch size. Past the last step the rate stays at EndFactor·base, where
// the official formula would turn back up.
func (s Schedule) LR(step, warm, total, batch int) (lrWeights, lrVectors float32) {
	lr := s.rate(step, warm, max(total, 0), batch)
	return float32(lr * s.Weights), float32(lr * s.Vectors)
}

func (s Schedule) rate(step, warm, total, batch int) float64 {
	base := s.Multiplier * float64(batch) / 256
	end := base * s.EndFactor
	switch {
	case step < warm:
		return base * float64(max(step, 0)) / float64(warm)
	case step >= total:
		return end
	}
	q := 0.5 * (1 + math.Cos(math.Pi*float64(step-warm)/float64(total-warm)))
	return base*q + end*(1-q)
}

// Describe is the schedule of a run in one line, for the start-up header.
func (s Schedule) Describe(warm, total, batch int) string {
	base := s.Multiplier * float64(batch) / 256
	w := s.Warmup.String()
	if s.Warmup.Unit == WarmupEpochs {
		w += " epochs of the full schedule"
	}
	return fmt.Sprintf("base %.4g (%g×%d/256), weights ×%g, biases and BatchNorm ×%g: warm-up over %d of %d steps (%s) to %.4g / %.4g, cosine to %.4g / %.4g",
		base, s.Multiplier, batch, s.Weights, s.Vectors, warm, total, w, base*s.Weights, base*s.Vectors,
		base*s.EndFactor*s.Weights, base*s.EndFactor*s.Vectors)
}
