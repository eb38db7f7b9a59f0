package pipeline

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
)

// CropMode selects how a view picks its region of the source image.
type CropMode int

const (
	// RandomResizedCrop draws a box with area fraction in Scale and aspect
	// ratio in Ratio, as torchvision's RandomResizedCrop.
	RandomResizedCrop CropMode = iota
	// CenterCrop takes the centred square whose side is CenterFraction of
	// the short side: Resize(Size/CenterFraction) + CenterCrop(Size).
	CenterCrop
)

// ViewConfig describes the distribution of one augmented view. Every
// probability and range of the Barlow Twins recipe is a field; a zero
// probability switches a step off.
type ViewConfig struct {
	Size           int // output height and width
	Crop           CropMode
	Scale          [2]float64 // area fraction range of RandomResizedCrop
	Ratio          [2]float64 // aspect ratio (w/h) range of RandomResizedCrop
	CenterFraction float64    // CenterCrop: crop side / short side
	Filter         Filter

	FlipP float64 // horizontal flip probability

	JitterP    float64 // probability of applying colour jitter at all
	Brightness float64 // factor drawn from [max(0, 1-b), 1+b]
	Contrast   float64 // factor drawn from [max(0, 1-c), 1+c]
	Saturation float64 // factor drawn from [max(0, 1-s), 1+s]
	Hue        float64 // shift drawn from [-h, h] turns, h ≤ 0.5

	GrayP float64 // grayscale probability

	BlurP              float64
	Sigma              [2]float64 // Gaussian σ range in output pixels
	BlurKernelFraction float64    // kernel size = odd(round(fraction × Size))

	SolarizeP         float64
	SolarizeThreshold float32 // values ≥ threshold become 1 - value

	// Mean and Std normalise the output; their length is the output channel
	// count (1 or 3). Sources with the other channel count are converted.
	Mean, Std []float32
}

// Config is the pair of view distributions for Barlow Twins pretraining.
type Config struct {
	A, B ViewConfig
}

// Channels is the number of output channels.
func (v *ViewConfig) Channels() int { return len(v.Mean) }

// KernelSize is the blur kernel size derived from the output size: the
// SimCLR/BYOL convention of 10% of the image side, made odd and at least 3
// (23 at 224 px).
func (v *ViewConfig) KernelSize() int {
	k := int(math.Round(v.BlurKernelFraction * float64(v.Size)))
	if k%2 == 0 {
		k++
	}
	return max(k, 3)
}

// Validate reports the first out-of-range field.
func (v *ViewConfig) Validate() error {
	prob := func(name string, p float64) error {
		if !(p >= 0 && p <= 1) {
			return fmt.Errorf("pipeline: %s = %v, want a probability in [0, 1]", name, p)
		}
		return nil
	}
	switch {
	case v.Size <= 0:
		return fmt.Errorf("pipeline: Size = %d, want > 0", v.Size)
	case v.Crop == RandomResizedCrop && !(v.Scale[0] > 0 && v.Scale[0] <= v.Scale[1] && v.Scale[1] <= 1):
		return fmt.Errorf("pipeline: Scale = %v, want 0 < lo ≤ hi ≤ 1", v.Scale)
	case v.Crop == RandomResizedCrop && !(v.Ratio[0] > 0 && v.Ratio[0] <= v.Ratio[1]):
		return fmt.Errorf("pipeline: Ratio = %v, want 0 < lo ≤ hi", v.Ratio)
	case v.Crop == CenterCrop && !(v.CenterFraction > 0 && v.CenterFraction <= 1):
		return fmt.Errorf("pipeline: CenterFraction = %v, want (0, 1]", v.CenterFraction)
	case v.Crop != RandomResizedCrop && v.Crop != CenterCrop:
		return fmt.Errorf("pipeline: unknown CropMode %d", v.Crop)
	case v.Filter != Bilinear && v.Filter != Bicubic:
		return fmt.Errorf("pipeline: unknown Filter %d", v.Filter)
	case !(v.Brightness >= 0 && v.Contrast >= 0 && v.Saturation >= 0):
		return errors.New("pipeline: Brightness, Contrast and Saturation must be ≥ 0")
	case !(v.Hue >= 0 && v.Hue <= 0.5):
		return fmt.Errorf("pipeline: Hue = %v, want [0, 0.5]", v.Hue)
	case v.BlurP > 0 && !(v.Sigma[0] > 0 && v.Sigma[0] <= v.Sigma[1]):
		return fmt.Errorf("pipeline: Sigma = %v, want 0 < lo ≤ hi", v.Sigma)
	case v.BlurP > 0 && !(v.BlurKernelFraction > 0):
		return fmt.Errorf("pipeline: BlurKernelFraction = %v, want > 0", v.BlurKernelFraction)
	case len(v.Mean) != 1 && len(v.Mean) != 3 || len(v.Std) != len(v.Mean):
		return fmt.Errorf("pipeline: Mean and Std have %d and %d entries, want 1 or 3 each", len(v.Mean), len(v.Std))
	}
	for _, s := range v.Std {
		if !(s > 0) {
			return fmt.Errorf("pipeline: Std = %v, want every entry > 0", v.Std)
		}
	}
	for _, p := range []struct {
		name string
		p    float64
	}{{"FlipP", v.FlipP}, {"JitterP", v.JitterP}, {"GrayP", v.GrayP}, {"BlurP", v.BlurP}, {"SolarizeP", v.SolarizeP}} {
		if err := prob(p.name, p.p); err != nil {
			return err
		}
	}
	return nil
}

// Jitter names one colour-jitter operation, for Params.Order.
type Jitter uint8

// The colour-jitter operations, applied in a random order per draw as
// torchvision's ColorJitter does.
const (
	JitterBrightness Jitter = iota
	JitterContrast
	JitterSaturation
	JitterHue
)

// Params records one draw of a view's random choices, so that tests and
// debugging tools can see which augmentations fired.
type Params struct {
	Crop      Box
	Flipped   bool
	Jittered  bool
	Order     [4]Jitter  // order the jitter operations ran in
	Factors   [4]float32 // brightness, contrast, saturation factors and hue shift
	Gray      bool
	Blurred   bool
	Sigma     float32
	Solarized bool
}

// Augmenter draws and applies one view. It keeps scratch buffers, so it is
// not safe for concurrent use: each worker owns one per view.
type Augmenter struct {
	cfg  ViewConfig
	rs   resampler
	bl   blurrer
	conv Image // source resampled before a channel-count conversion
}

// NewAugmenter checks cfg and returns an Augmenter for it.
func NewAugmenter(cfg ViewConfig) (*Augmenter, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Augmenter{cfg: cfg}, nil
}

// Config returns the view configuration.
func (a *Augmenter) Config() ViewConfig { return a.cfg }

// Draw makes every random choice of one view of an h×w source image, in the
// order of the official transform (crop, flip, jitter, grayscale, blur,
// solarize). The draw consumes r in a fixed way, which is what makes the
// loader's output independent of scheduling.
func (a *Augmenter) Draw(r *rand.Rand, h, w int) Params {
	c := &a.cfg
	var p Params
	if c.Crop == CenterCrop {
		p.Crop = centerBox(h, w, c.CenterFraction)
	} else {
		p.Crop = randomResizedCrop(r, h, w, c.Scale, c.Ratio)
	}
	p.Flipped = c.FlipP > 0 && r.Float64() < c.FlipP
	if c.JitterP > 0 && r.Float64() < c.JitterP {
		p.Jittered = true
		for i, j := range r.Perm(4) {
			p.Order[i] = Jitter(j)
		}
		factor := func(s float64) float32 { return float32(uniform(r, max(0, 1-s), 1+s)) }
		p.Factors = [4]float32{factor(c.Brightness), factor(c.Contrast), factor(c.Saturation), float32(uniform(r, -c.Hue, c.Hue))}
	}
	p.Gray = c.GrayP > 0 && r.Float64() < c.GrayP
	if c.BlurP > 0 && r.Float64() < c.BlurP {
		p.Blurred = true
		p.Sigma = float32(uniform(r, c.Sigma[0], c.Sigma[1]))
	}
	p.Solarized = c.SolarizeP > 0 && r.Float64() < c.SolarizeP
	return p
}

// Apply renders the view described by p from src into dst, which must hold
// Channels()×Size×Size values and receives normalised planar pixels: the
// slice can be a sample's slot in a batch, so nothing is copied afterwards.
func (a *Augmenter) Apply(dst []float32, src *Image, p *Params) {
	c := &a.cfg
	oc, s := c.Channels(), c.Size
	n := s * s
	dst = dst[:oc*n]
	m := cropMatrix(p.Crop, s, s, p.Flipped)
	if src.C == oc {
		a.rs.warp(dst, src, m, s, s, c.Filter)
	} else {
		a.conv.Resize(src.C, s, s)
		a.rs.warp(a.conv.Pix, src, m, s, s, c.Filter)
		convertChannels(dst, a.conv.Pix, src.C, oc, n)
	}
	if p.Jittered {
		for _, op := range p.Order {
			f := p.Factors[op]
			switch op {
			case JitterBrightness:
				if f != 1 {
					brightness(dst, f)
				}
			case JitterContrast:
				if f != 1 {
					contrast(dst, oc, n, f)
				}
			case JitterSaturation:
				if f != 1 {
					saturation(dst, oc, n, f)
				}
			case JitterHue:
				hueShift(dst, oc, n, f)
			}
		}
	}
	if p.Gray {
		grayscale(dst, oc, n)
	}
	if p.Blurred {
		a.bl.blur(dst, oc, s, s, c.KernelSize(), p.Sigma)
	}
	if p.Solarized {
		solarize(dst, c.SolarizeThreshold)
	}
	for ch := range oc {
		mean, inv := c.Mean[ch], 1/c.Std[ch]
		plane := dst[ch*n : (ch+1)*n]
		for i, v := range plane {
			plane[i] = (v - mean) * inv
		}
	}
}

// View draws and applies one view in a single call.
func (a *Augmenter) View(dst []float32, src *Image, r *rand.Rand) Params {
	p := a.Draw(r, src.H, src.W)
	a.Apply(dst, src, &p)
	return p
}

// convertChannels turns gray into RGB by replication and RGB into gray by
// luma, the only two conversions between the supported channel counts.
func convertChannels(dst, src []float32, from, to, n int) {
	if from == 1 {
		for ch := range to {
			copy(dst[ch*n:(ch+1)*n], src[:n])
		}
		return
	}
	r, g, b := src[:n], src[n:2*n], src[2*n:3*n]
	for i := range n {
		dst[i] = lumaR*r[i] + lumaG*g[i] + lumaB*b[i]
	}
}
