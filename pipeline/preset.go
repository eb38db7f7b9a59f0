package pipeline

import (
	"fmt"
	"slices"

	"github.com/bt-org/bt/internal/enum"
)

// Normalisation statistics of the datasets the presets are meant for.
var (
	ImageNetMean     = []float32{0.485, 0.456, 0.406}
	ImageNetStd      = []float32{0.229, 0.224, 0.225}
	CIFARMean        = []float32{0.4914, 0.4822, 0.4465}
	CIFARStd         = []float32{0.2470, 0.2435, 0.2616}
	FashionMNISTMean = []float32{0.2860}
	FashionMNISTStd  = []float32{0.3530}
	MNISTMean        = []float32{0.1307}
	MNISTStd         = []float32{0.3081}
)

// PresetName names an augmentation preset (Preset, EvalPreset,
// ProbePreset). Its text is the name; UnmarshalText refuses names that
// are not presets and takes "", the zero value, which names none (a
// train.DataConfig then takes its data set's own).
type PresetName string

// The presets.
const (
	ImageNetPreset     PresetName = "imagenet"
	CIFARPreset        PresetName = "cifar"
	FashionMNISTPreset PresetName = "fashion-mnist"
	MNISTPreset        PresetName = "mnist"
)

// PresetNames lists the names Preset, EvalPreset and ProbePreset accept.
func PresetNames() []PresetName {
	return []PresetName{ImageNetPreset, CIFARPreset, FashionMNISTPreset, MNISTPreset}
}

// Check is nil for a preset's name or "".
func (p PresetName) Check() error {
	if p == "" {
		return nil
	}
	return enum.Check("pipeline: augmentation preset", p, PresetNames())
}

func (p PresetName) String() string { return string(p) }

// MarshalText is p's name.
func (p PresetName) MarshalText() ([]byte, error) { return []byte(p), nil }

// UnmarshalText takes a preset's name, or "".
func (p *PresetName) UnmarshalText(text []byte) error {
	v := PresetName(text)
	if err := v.Check(); err != nil {
		return err
	}
	*p = v
	return nil
}

// official is view A of the Barlow Twins ImageNet recipe (main.py's
// Transform): crop, flip, jitter with p 0.8, grayscale 0.2, blur, no
// solarization.
func official() ViewConfig {
	return ViewConfig{
		Size:               224,
		Crop:               RandomResizedCrop,
		Scale:              [2]float64{0.08, 1},
		Ratio:              [2]float64{3.0 / 4, 4.0 / 3},
		Filter:             Bicubic,
		FlipP:              0.5,
		JitterP:            0.8,
		Brightness:         0.4,
		Contrast:           0.4,
		Saturation:         0.2,
		Hue:                0.1,
		GrayP:              0.2,
		BlurP:              1.0,
		Sigma:              [2]float64{0.1, 2},
		BlurKernelFraction: 0.1,
		SolarizeP:          0,
		SolarizeThreshold:  128.0 / 255, // PIL's ImageOps.solarize default on 8-bit pixels
		Mean:               ImageNetMean,
		Std:                ImageNetStd,
	}
}

// Preset returns the two-view pretraining distribution of a named preset.
// "imagenet" is the paper's (224 px, bicubic, blur 1.0/0.1, solarize
// 0.0/0.2). "cifar" (32 px) and "fashion-mnist"/"mnist" (28 px, one
// channel) drop the blur, which destroys most of a small image, and use
// bilinear resampling, torchvision's default that small-image
// reimplementations keep; the gray presets also drop saturation, hue and
// grayscale, which do nothing to one channel.
func Preset(name PresetName) (Config, error) {
	a := official()
	switch name {
	case ImageNetPreset:
	case CIFARPreset:
		a.Size, a.Filter, a.BlurP = 32, Bilinear, 0
		a.Mean, a.Std = CIFARMean, CIFARStd
	case FashionMNISTPreset, MNISTPreset:
		a.Size, a.Filter, a.BlurP = 28, Bilinear, 0
		a.Saturation, a.Hue, a.GrayP = 0, 0, 0
		a.Mean, a.Std = FashionMNISTMean, FashionMNISTStd
		if name == MNISTPreset {
			a.Mean, a.Std = MNISTMean, MNISTStd
		}
	default:
		return Config{}, fmt.Errorf("pipeline: unknown preset %q (have %v)", name, PresetNames())
	}
	a.Mean, a.Std = slices.Clone(a.Mean), slices.Clone(a.Std)
	b := a
	b.Mean, b.Std = slices.Clone(a.Mean), slices.Clone(a.Std)
	if a.BlurP > 0 {
		b.BlurP = 0.1
	}
	b.SolarizeP = 0.2
	return Config{A: a, B: b}, nil
}

// EvalPreset returns the deterministic evaluation transform of a preset:
// Resize(256) + CenterCrop(224) for "imagenet"; the small-image presets take
// the whole image (CenterFraction 1), which at native size is the identity.
func EvalPreset(name PresetName) (ViewConfig, error) {
	c, err := Preset(name)
	if err != nil {
		return ViewConfig{}, err
	}
	v := c.A
	v.Crop, v.CenterFraction = CenterCrop, 1
	if name == ImageNetPreset {
		v.CenterFraction = 224.0 / 256
	}
	v.FlipP, v.JitterP, v.GrayP, v.BlurP, v.SolarizeP = 0, 0, 0, 0, 0
	return v, nil
}

// ProbePreset returns the linear-probe training transform of a preset:
// RandomResizedCrop and horizontal flip only, as the official evaluate.py.
func ProbePreset(name PresetName) (ViewConfig, error) {
	c, err := Preset(name)
	if err != nil {
		return ViewConfig{}, err
	}
	v := c.A
	v.JitterP, v.GrayP, v.BlurP, v.SolarizeP = 0, 0, 0, 0
	return v, nil
}

// Ablation names one of the paper's augmentation ablations (Without).
// Its text is the name; UnmarshalText refuses names that are not
// ablations and takes "", the zero value: none.
type Ablation string

// The paper's ablations: "no grayscale + no colour jitter", "crop + blur
// only" and "crop only".
const (
	NoColor  Ablation = "no-color"
	CropBlur Ablation = "crop+blur"
	CropOnly Ablation = "crop"
)

// Ablations lists the augmentation ablations Without accepts.
func Ablations() []Ablation { return []Ablation{NoColor, CropBlur, CropOnly} }

// Check is nil for an ablation's name or "".
func (a Ablation) Check() error {
	if a == "" {
		return nil
	}
	return enum.Check("pipeline: augmentation ablation", a, Ablations())
}

func (a Ablation) String() string { return string(a) }

// MarshalText is a's name.
func (a Ablation) MarshalText() ([]byte, error) { return []byte(a), nil }

// UnmarshalText takes an ablation's name, or "".
func (a *Ablation) UnmarshalText(text []byte) error {
	v := Ablation(text)
	if err := v.Check(); err != nil {
		return err
	}
	*a = v
	return nil
}

// Without returns the configuration with augmentations removed, as the
// paper's ablations do. "no-color" drops colour jitter and grayscale;
// "crop+blur" keeps only the random resized crop and the blur (with the
// official probabilities, 1.0 and 0.1, even where the preset had none);
// "crop" keeps only the crop.
func (c Config) Without(ablation Ablation) (Config, error) {
	out := c
	for _, v := range []*ViewConfig{&out.A, &out.B} {
		switch ablation {
		case NoColor:
			v.JitterP, v.GrayP = 0, 0
		case CropBlur, CropOnly:
			v.FlipP, v.JitterP, v.GrayP, v.SolarizeP = 0, 0, 0, 0
			v.BlurP = 0
		default:
			return Config{}, fmt.Errorf("pipeline: unknown augmentation ablation %q (have %v)", ablation, Ablations())
		}
	}
	if ablation == CropBlur {
		out.A.BlurP, out.B.BlurP = 1.0, 0.1
		for _, v := range []*ViewConfig{&out.A, &out.B} {
			if v.Sigma == [2]float64{} {
				v.Sigma = [2]float64{0.1, 2}
			}
			if v.BlurKernelFraction == 0 {
				v.BlurKernelFraction = 0.1
			}
		}
	}
	return out, out.A.Validate()
}
