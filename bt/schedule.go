package bt

import "math"

// Schedule is the official Barlow Twins learning-rate schedule
// (adjust_learning_rate in facebookresearch/barlowtwins main.py): the base
// rate Multiplier·batch/256 rises linearly over WarmupEpochs, counted per
// step, then follows a cosine down to EndFactor·base at the last step.
// Weights take Weights times the rate and vectors (biases and BatchNorm's
// γ and β) Vectors times it.
type Schedule struct {
	Multiplier   float64 // scales batch/256; the official code has 1
	WarmupEpochs float64 // may be fractional; capped at the run's length
	EndFactor    float64 // the final rate as a fraction of the base
	Weights      float64 // learning_rate_weights
	Vectors      float64 // learning_rate_biases
}

// DefaultSchedule is the official one: 10 warm-up epochs, decay to 0.001 of
// the base, weights 0.2 and biases and BatchNorm 0.0048 of the rate.
func DefaultSchedule() Schedule {
	return Schedule{Multiplier: 1, WarmupEpochs: 10, EndFactor: 0.001, Weights: 0.2, Vectors: 0.0048}
}

// LR returns the learning rates for step (counted from 0 over the whole
// run) of a run of epochs epochs of stepsPerEpoch steps at the given batch
// size. Warm-up longer than the run is cut to the run, so a short run warms
// up throughout. Past the last step the rate stays at EndFactor·base,
// where the official formula would turn back up.
func (s Schedule) LR(step, stepsPerEpoch, epochs, batch int) (lrWeights, lrVectors float32) {
	total := max(epochs*stepsPerEpoch, 0)
	warm := max(min(int(math.Round(s.WarmupEpochs*float64(stepsPerEpoch))), total), 0)
	base := s.Multiplier * float64(batch) / 256
	end := base * s.EndFactor
	var lr float64
	switch {
	case step < warm:
		lr = base * float64(max(step, 0)) / float64(warm)
	case step >= total:
		lr = end
	default:
		q := 0.5 * (1 + math.Cos(math.Pi*float64(step-warm)/float64(total-warm)))
		lr = base*q + end*(1-q)
	}
	return float32(lr * s.Weights), float32(lr * s.Vectors)
}
