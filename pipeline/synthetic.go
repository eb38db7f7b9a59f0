package pipeline

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// SyntheticConfig sizes a Synthetic dataset.
type SyntheticConfig struct {
	Count    int    // number of images
	Size     int    // height and width in pixels
	Channels int    // 1 or 3
	Classes  int    // number of shapes used, 2 to len(SyntheticClasses)
	Seed     uint64 // the same seed gives the same images
}

// SyntheticClasses are the shapes of the synthetic dataset, in label order.
var SyntheticClasses = []string{"circle", "square", "triangle", "plus", "ring", "diamond", "flower", "ellipse", "frame", "cross"}

// DefaultSynthetic is a CIFAR-sized synthetic set of all ten shapes.
func DefaultSynthetic() SyntheticConfig {
	return SyntheticConfig{Count: 10000, Size: 32, Channels: 3, Classes: len(SyntheticClasses), Seed: 1}
}

// Synthetic is a procedural dataset in which the class is a shape and
// everything else (position, size, small rotation, colours, textures,
// noise) is a nuisance drawn at random. Shapes stay recognisable under the
// pretraining crops while colours are what jitter scrambles, so
// self-supervised features that separate the classes must have learned
// shape. Images are rendered on Load from (Seed, index); nothing is stored.
type Synthetic struct {
	cfg SyntheticConfig
}

// NewSynthetic checks cfg and returns the dataset.
func NewSynthetic(cfg SyntheticConfig) (*Synthetic, error) {
	switch {
	case cfg.Count <= 0:
		return nil, fmt.Errorf("pipeline: synthetic Count = %d, want > 0", cfg.Count)
	case cfg.Size < 8:
		return nil, fmt.Errorf("pipeline: synthetic Size = %d, want ≥ 8", cfg.Size)
	case cfg.Channels != 1 && cfg.Channels != 3:
		return nil, fmt.Errorf("pipeline: synthetic Channels = %d, want 1 or 3", cfg.Channels)
	case cfg.Classes < 2 || cfg.Classes > len(SyntheticClasses):
		return nil, fmt.Errorf("pipeline: synthetic Classes = %d, want 2 to %d", cfg.Classes, len(SyntheticClasses))
	}
	return &Synthetic{cfg: cfg}, nil
}

// Len implements Dataset.
func (d *Synthetic) Len() int { return d.cfg.Count }

// Channels implements Dataset.
func (d *Synthetic) Channels() int { return d.cfg.Channels }

// Size implements Dataset.
func (d *Synthetic) Size() (h, w int) { return d.cfg.Size, d.cfg.Size }

// NumClasses implements Dataset.
func (d *Synthetic) NumClasses() int { return d.cfg.Classes }

// ClassNames implements Dataset.
func (d *Synthetic) ClassNames() []string { return SyntheticClasses[:d.cfg.Classes] }

// Label implements Dataset: classes take turns, so every class has
// Count/Classes images (±1).
func (d *Synthetic) Label(i int) int { return i % d.cfg.Classes }

// inside reports whether local coordinates (u, v), in units of the shape's
// radius with v pointing down, fall in shape k.
func inside(k int, u, v float64) bool {
	au, av := math.Abs(u), math.Abs(v)
	r := math.Hypot(u, v)
	switch k {
	case 0: // circle
		return r <= 1
	case 1: // square
		return max(au, av) <= 0.8
	case 2: // triangle, apex up
		return v <= 0.7 && v >= -0.9 && au <= 0.95*(v+0.9)/1.6
	case 3: // plus
		return (au <= 0.3 && av <= 0.95) || (av <= 0.3 && au <= 0.95)
	case 4: // ring
		return r <= 1 && r >= 0.55
	case 5: // diamond
		return au+av <= 1.05
	case 6: // five-petal flower
		return r <= 0.55+0.4*math.Cos(5*math.Atan2(v, u))
	case 7: // wide ellipse
		return u*u+v*v/(0.45*0.45) <= 1
	case 8: // hollow square
		m := max(au, av)
		return m <= 0.9 && m >= 0.55
	default: // diagonal cross
		return r <= 1 && (math.Abs(u-v) <= 0.35 || math.Abs(u+v) <= 0.35)
	}
}

// Load implements Dataset.
func (d *Synthetic) Load(i int, dst *Image) error {
	if i < 0 || i >= d.cfg.Count {
		return fmt.Errorf("pipeline: synthetic image %d out of range [0, %d)", i, d.cfg.Count)
	}
	s := d.cfg.Size
	fs := float64(s)
	r := rand.New(rand.NewPCG(d.cfg.Seed, splitmix(uint64(i))))
	shape := d.Label(i)
	cx := fs * uniform(r, 0.38, 0.62)
	cy := fs * uniform(r, 0.38, 0.62)
	rad := fs * uniform(r, 0.24, 0.34)
	theta := uniform(r, -0.25, 0.25)
	cos, sin := math.Cos(theta), math.Sin(theta)
	// Foreground and background differ in luma by at least 0.3, so the
	// shape stays visible in gray images and after grayscale augmentation.
	var bg, fg [3]float64
	for {
		for c := range 3 {
			bg[c], fg[c] = r.Float64(), r.Float64()
		}
		if math.Abs(luma64(fg)-luma64(bg)) >= 0.3 {
			break
		}
	}
	bgF, bgA, bgP := uniform(r, 0.5, 3)*2*math.Pi/fs, uniform(r, 0, math.Pi), uniform(r, 0, 2*math.Pi)
	fgF, fgA, fgP := uniform(r, 2, 6)*2*math.Pi/fs, uniform(r, 0, math.Pi), uniform(r, 0, 2*math.Pi)
	dst.Resize(d.cfg.Channels, s, s)
	n := s * s
	for y := range s {
		for x := range s {
			// 2×2 supersampling gives the edges partial coverage.
			cover := 0.0
			for _, o := range [4][2]float64{{0.25, 0.25}, {0.75, 0.25}, {0.25, 0.75}, {0.75, 0.75}} {
				px, py := float64(x)+o[0]-cx, float64(y)+o[1]-cy
				u := (cos*px + sin*py) / rad
				v := (-sin*px + cos*py) / rad
				if inside(shape, u, v) {
					cover += 0.25
				}
			}
			fx, fy := float64(x), float64(y)
			bt := 0.08 * math.Sin(bgF*(fx*math.Cos(bgA)+fy*math.Sin(bgA))+bgP)
			ft := 0.1 * math.Sin(fgF*(fx*math.Cos(fgA)+fy*math.Sin(fgA))+fgP)
			noise := 0.02 * r.NormFloat64()
			var px [3]float64
			for c := range 3 {
				px[c] = cover*(fg[c]+ft) + (1-cover)*(bg[c]+bt) + noise
			}
			if d.cfg.Channels == 1 {
				dst.Pix[y*s+x] = clamp01(float32(luma64(px)))
				continue
			}
			for c := range 3 {
				dst.Pix[c*n+y*s+x] = clamp01(float32(px[c]))
			}
		}
	}
	return nil
}

func luma64(c [3]float64) float64 { return lumaR*c[0] + lumaG*c[1] + lumaB*c[2] }

// splitmix is SplitMix64's output function: it spreads consecutive integers
// over the whole 64-bit range before they seed a PCG stream.
func splitmix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}
