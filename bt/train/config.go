package train

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
)

// Config is a whole pretraining run: its data, network, objective,
// optimiser, schedule and length. DefaultConfig is the paper's recipe;
// Resolve checks ranges and conflicts and works out what follows from the
// settings; New builds a run from it; every checkpoint stores it,
// resolved, so a resumed run, an evaluation or an Encoder sees exactly
// what trained. Its JSON is config.json's: the enumerated settings are
// named types whose text is their name (Precision, optim.Kind,
// pipeline.PresetName, …), and decoding refuses a name that is not one.
type Config struct {
	Data  DataConfig   `json:"data"`
	Model ModelConfig  `json:"model"`
	Loss  loss.Options `json:"loss"`
	// InfoNCE, when positive, trains with the cross-entropy at this
	// temperature instead of the Barlow Twins loss: the paper's comparison.
	InfoNCE float64 `json:"infonce_temperature,omitempty"`
	// StopGradient stops the gradient at the second branch's embedding:
	// one of the paper's asymmetry ablations.
	StopGradient bool `json:"stop_gradient,omitempty"`
	// PerRankBatchNorm, over several processes (Options.Comm), keeps each
	// rank's BatchNorm statistics to its own share of the batch, as
	// PyTorch's DistributedDataParallel does without SyncBatchNorm: a
	// different model, whose normalisation sees batch/ranks samples. By
	// default they are synchronised, as in the official code.
	PerRankBatchNorm bool `json:"per_rank_batchnorm,omitempty"`
	// Precision is where the activations live: F32 ("" too, as in
	// checkpoints written before the setting), or F16, mixed precision:
	// activations and their gradients stored as f16, everything computed
	// in f32, and the parameters, their gradients, the optimiser state,
	// BatchNorm statistics and the loss in f32. Where the adapter has
	// shader-f16.
	Precision Precision `json:"precision,omitempty"`
	// LossScale multiplies the loss's gradient before it enters the
	// network and divides the parameters' gradients by it after, so that
	// gradients too small for f16 (the loss's, at large batches late in
	// training: BENCHMARKS.md) are stored as normal numbers. 0 is the
	// default: DefaultLossScale with f16 activations, 1 in f32.
	LossScale float64 `json:"loss_scale,omitempty"`

	Optimizer   optim.Kind     `json:"optimizer"`
	WeightDecay float64        `json:"weight_decay"`
	Schedule    optim.Schedule `json:"schedule"`
	Batch       int            `json:"batch"`  // pairs per step
	Epochs      int            `json:"epochs"` // the schedule spans them
	// Steps, when positive and shorter than Epochs, ends the run after that
	// many steps with the whole schedule compressed to fit.
	Steps int    `json:"steps"`
	Seed  uint64 `json:"seed"` // initialisation, data order and augmentations
}

// DataConfig is the data a run trains on and how it is augmented.
type DataConfig struct {
	Name string `json:"name"` // pipeline.Open's names: fashion-mnist, cifar10, folder, …
	Dir  string `json:"dir"`  // "" for the dataset's default directory
	// Augment is the augmentation preset; "" takes the dataset's. Size,
	// when positive, overrides its view size.
	Augment pipeline.PresetName `json:"augment"`
	Size    int                 `json:"size"`
	// Without drops augmentations: one of pipeline.Ablations, or "" for
	// none.
	Without pipeline.Ablation `json:"without,omitempty"`
	// CropMin, when positive, is the smallest area fraction of the views'
	// random resized crops in place of the preset's (0.08, the paper's).
	// Jitter, when positive, multiplies the colour jitter's strengths
	// (brightness, contrast, saturation, hue) of the preset (1). Short
	// runs are swept over both (bt ablate augment-strength): augmentations
	// tuned for 1000 epochs may be too hard for tens.
	CropMin float64 `json:"crop_min,omitempty"`
	Jitter  float64 `json:"jitter_strength,omitempty"`
	// SkipBad, MaxBadFraction and MaxPixels are the loader's handling of
	// images that do not decode or are too large (see pipeline).
	SkipBad        bool    `json:"skip_bad_images,omitempty"`
	MaxBadFraction float64 `json:"max_bad_fraction"`
	MaxPixels      int     `json:"max_pixels"`
	Workers        int     `json:"workers"` // loading goroutines; 0: one per CPU
	// AugmentOn is where the views are augmented: AugmentCPU by the
	// loader's workers, AugmentDevice by package augment from raw batches,
	// inside the step's recording, or AugmentAuto (also "", as in
	// checkpoints written before the setting): the device unless the
	// adapter is a CPU, where the workers are faster (BENCHMARKS.md). Both
	// draw the same augmentations for a seed; the pixels differ by float
	// rounding.
	AugmentOn AugmentPlace `json:"augment_on,omitempty"`
	// Validation holds a seeded share of the training images out of
	// pretraining (and of the probes' training, Open), for choosing
	// settings on; the test split is left for the final figures. Zero (as
	// in configurations written before the setting): none held out.
	Validation Validation `json:"validation,omitzero"`
}

// Validation is a validation split: a share of a data set's training
// images, drawn by a seed, held out of pretraining and of the probes'
// training (DataConfig.Open's "validation" split).
type Validation struct {
	// Fraction is the share of the training split held out, in [0, 1);
	// 0: none.
	Fraction float64 `json:"fraction"`
	// Seed draws the images (pipeline.Holdout); it is the split's own, not
	// the run's, so that runs of several seeds are compared on one set.
	Seed uint64 `json:"seed"`
	// Images is how many images the split holds, recorded when a run
	// opens its data, so that an evaluation that draws it again from other
	// data is refused; 0 before.
	Images int `json:"images,omitempty"`
}

// Split names of DataConfig.Open.
const (
	TrainSplit      = "train"
	ValidationSplit = "validation"
	TestSplit       = "test"
)

// DefaultValidationFraction is the validation split where settings are
// chosen (bt ablate, the sweep): a tenth of the training images.
const DefaultValidationFraction = 0.1

// ChoiceSplit is the split on which figures for choosing settings are
// taken: validation where d holds one, else test.
func (d DataConfig) ChoiceSplit() string {
	if d.Validation.Fraction > 0 {
		return ValidationSplit
	}
	return TestSplit
}

// Describe says what the split holds, for the user.
func (v Validation) Describe() string {
	if v.Fraction == 0 {
		return "no validation split: every training image is trained on"
	}
	n := ""
	if v.Images > 0 {
		n = fmt.Sprintf("%d images, ", v.Images)
	}
	return fmt.Sprintf("validation split: %s%g%% of the training images drawn by seed %d, held out of pretraining and of the probes' training", n, 100*v.Fraction, v.Seed)
}

// DefaultLossScale is mixed precision's loss scale: with it the Barlow
// Twins loss's gradient at N = 2048, D = 8192 and C_ii = 0.99, whose
// largest entry is 5.6e-5 and 99% of which lie below f16's smallest normal
// number, lands between 1.3e-4 (its 1% quantile) and 0.057; early in
// training the largest, 0.035 at N = 256, becomes 36, far from f16's
// 65504.
const DefaultLossScale = 1024

// GradScale is the loss scale the run uses (LossScale, or its default).
func (c Config) GradScale() float32 {
	switch {
	case c.LossScale > 0:
		return float32(c.LossScale)
	case c.Activations() == gpu.F16:
		return DefaultLossScale
	}
	return 1
}

// Activations is the element type of the passes' activations.
func (c Config) Activations() gpu.DType {
	if c.Precision == F16 {
		return gpu.F16
	}
	return gpu.F32
}

// OnDevice reports whether views are augmented on dev.
func (d DataConfig) OnDevice(dev *gpu.Device) bool {
	switch d.AugmentOn {
	case AugmentDevice:
		return true
	case AugmentCPU:
		return false
	}
	return !dev.IsCPU()
}

// DefaultConfig is the paper's recipe (LARS, λ 0.0051, batch 256, 100
// epochs with 10 of warm-up) on Fashion-MNIST with the tiny ResNet and a
// 512-wide projector, sizes that train on any adapter.
func DefaultConfig() Config {
	return Config{
		Data:      DataConfig{Name: "fashion-mnist", MaxBadFraction: pipeline.DefaultMaxBadFraction, MaxPixels: pipeline.DefaultMaxPixels, AugmentOn: AugmentAuto},
		Model:     ModelConfig{Arch: "tiny", Projector: "512-512-512", Seed: 1},
		Loss:      loss.DefaultOptions(),
		Optimizer: optim.LARS, WeightDecay: 1.5e-6, Schedule: optim.DefaultSchedule(),
		Batch: 256, Epochs: 100, Seed: 1,
	}
}

// Preset is the augmentation preset the data takes: Augment, or the
// dataset's own.
func (d DataConfig) Preset() pipeline.PresetName {
	if d.Augment != "" {
		return d.Augment
	}
	switch strings.ToLower(d.Name) {
	case "fashion-mnist", "fashion_mnist", "fashionmnist":
		return pipeline.FashionMNISTPreset
	case "mnist":
		return pipeline.MNISTPreset
	case "cifar10", "cifar-10", "cifar100", "cifar-100", "synthetic":
		return pipeline.CIFARPreset
	}
	return pipeline.ImageNetPreset
}

// Views are the two augmented views pretraining draws.
func (d DataConfig) Views() (pipeline.Config, error) {
	views, err := pipeline.Preset(d.Preset())
	if err != nil {
		return views, err
	}
	if d.Size > 0 {
		views.A.Size, views.B.Size = d.Size, d.Size
	}
	for _, v := range []*pipeline.ViewConfig{&views.A, &views.B} {
		if d.CropMin > 0 {
			v.Scale[0] = d.CropMin
		}
		if d.Jitter > 0 {
			v.Brightness, v.Contrast, v.Saturation, v.Hue = d.Jitter*v.Brightness, d.Jitter*v.Contrast, d.Jitter*v.Saturation, d.Jitter*v.Hue
		}
	}
	if d.Without != "" {
		return views.Without(d.Without)
	}
	return views, nil
}

// EvalView is the preprocessing of evaluation and embedding: the preset's
// resize and centre crop at the run's size, and its normalisation.
func (d DataConfig) EvalView() (pipeline.ViewConfig, error) {
	v, err := pipeline.EvalPreset(d.Preset())
	if d.Size > 0 {
		v.Size = d.Size
	}
	return v, err
}

// fitPreset picks the augmentation preset of an image folder from its
// images' size when Augment is empty: the ImageNet preset would turn
// 28-pixel images into 224-pixel views, 60 times the work for nothing. It
// looks at ds's first image and returns what it chose, for the user ("" when
// it chose nothing).
func (d *DataConfig) fitPreset(ds pipeline.Dataset) (string, error) {
	if d.Augment != "" || !strings.HasPrefix(strings.ToLower(d.Name), "folder") || ds.Len() == 0 {
		return "", nil
	}
	var img pipeline.Image
	if err := ds.Load(0, &img); err != nil {
		return "", err
	}
	if min(img.H, img.W) >= 64 {
		return "", nil
	}
	d.Augment = pipeline.CIFARPreset
	return fmt.Sprintf("the folder's first image is %d×%d: the cifar preset (32-px views, no blur) is used; -augment imagenet gives 224-px views", img.W, img.H), nil
}

// Open opens one of the data set's splits: "train", the training images
// less those Validation holds out, "validation", those images (an error
// when it holds none), or "test".
func (d DataConfig) Open(split string) (pipeline.Dataset, error) {
	if split == TestSplit || (split == TrainSplit && d.Validation.Fraction == 0) {
		return pipeline.Open(d.Name, d.Dir, split, pipeline.FolderOptions{MaxPixels: d.MaxPixels})
	}
	if split != TrainSplit && split != ValidationSplit {
		return nil, fmt.Errorf("train: split %q: want %s, %s or %s", split, TrainSplit, ValidationSplit, TestSplit)
	}
	if d.Validation.Fraction == 0 {
		return nil, fmt.Errorf("train: no validation split of %s: no training images were held out (a validation fraction)", d.Name)
	}
	keep, held, err := d.holdOut()
	if split == ValidationSplit {
		return held, err
	}
	return keep, err
}

// holdOut opens the training split and splits it as Validation says.
func (d DataConfig) holdOut() (keep, held pipeline.Dataset, err error) {
	ds, err := pipeline.Open(d.Name, d.Dir, TrainSplit, pipeline.FolderOptions{MaxPixels: d.MaxPixels})
	if err != nil {
		return nil, nil, err
	}
	v := d.Validation
	n := int(math.Round(v.Fraction * float64(ds.Len())))
	if v.Images != 0 && v.Images != n {
		return nil, nil, fmt.Errorf("train: the validation split holds %d images, but %g of %s's %d training images are %d: it was drawn from other data", v.Images, v.Fraction, d.Name, ds.Len(), n)
	}
	if keep, held, err = pipeline.Holdout(ds, n, v.Seed); err != nil {
		return nil, nil, fmt.Errorf("train: validation fraction %g of %d training images: %w", v.Fraction, ds.Len(), err)
	}
	return keep, held, nil
}

// openTrain opens the images pretraining draws from and records in d how
// many Validation holds out.
func (d *DataConfig) openTrain() (pipeline.Dataset, error) {
	if d.Validation.Fraction == 0 {
		return d.Open(TrainSplit)
	}
	keep, held, err := d.holdOut()
	if err != nil {
		return nil, err
	}
	d.Validation.Images = held.Len()
	return keep, nil
}

// Resolved is a Config checked and completed, with what follows from
// its settings worked out once: the two views pretraining draws and the
// projector's widths. Only Config.Resolve makes one (its fields are
// unexported, and the zero value is refused), so that what takes one, a
// run's assembly, CheckMemory, neither validates the configuration again
// nor builds the views again.
type Resolved struct {
	cfg    Config
	views  pipeline.Config
	widths []int
}

// Config is the resolved configuration: the one given, with the
// network's input channels and, where not chosen, its stem filled in
// from the views. Checkpoints record it.
func (r Resolved) Config() Config { return r.cfg }

// Views are the two augmented views pretraining draws.
func (r Resolved) Views() pipeline.Config { return r.views }

// Widths are the projector's layer widths, the last the embedding's.
func (r Resolved) Widths() []int { return slices.Clone(r.widths) }

// Dim is the embedding's width.
func (r Resolved) Dim() int { return r.widths[len(r.widths)-1] }

// errUnresolved is the error of a function given a Resolved that
// Config.Resolve did not make.
var errUnresolved = errors.New("train: a configuration that Config.Resolve did not resolve")

// check returns errUnresolved for the zero Resolved.
func (r Resolved) check() error {
	if len(r.widths) == 0 {
		return errUnresolved
	}
	return nil
}

// Resolve validates c (Validate's checks) and works out what follows from
// it: the views, the projector's widths, the network's input channels
// and, where not chosen, its stem (small under 64 px).
func (c Config) Resolve() (Resolved, error) {
	errs := c.checks()
	widths, err := c.Model.Projector.Widths()
	if err != nil {
		errs = append(errs, err)
	}
	// The views with the crop and jitter settings applied: a crop above
	// the preset's largest, or hue jitter past 0.5, is refused here. An
	// unknown preset or ablation is among errs already.
	views, verr := c.Data.Views()
	if verr == nil {
		for _, v := range []pipeline.ViewConfig{views.A, views.B} {
			if err := v.Validate(); err != nil {
				errs = append(errs, fmt.Errorf("train: smallest crop %v, jitter strength %v: %v", c.Data.CropMin, c.Data.Jitter, err))
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return Resolved{}, err
	}
	if verr != nil {
		return Resolved{}, verr
	}
	c.Model.InChannels = views.A.Channels()
	if c.Model.Stem == "" && views.A.Size < 64 {
		c.Model.Stem = models.SmallStem
	}
	return Resolved{cfg: c, views: views, widths: widths}, nil
}

// Validate checks every setting's range and the ablations' conflicts, so
// that a bad configuration fails here, naming the setting, and not deep
// inside a step: Resolve's checks, for a caller that wants only them.
func (c Config) Validate() error {
	_, err := c.Resolve()
	return err
}

// checks are the errors of Validate that do not need the views or the
// projector's widths.
func (c Config) checks() []error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	finite := func(v float64) bool { return !math.IsNaN(v) && !math.IsInf(v, 0) }
	if err := c.Loss.Validate(); err != nil {
		errs = append(errs, err)
	}
	s := c.Schedule
	for _, f := range []struct {
		name string
		v    float64
		open bool // zero is out of range too
	}{{"schedule multiplier (lr)", s.Multiplier, true}, {"schedule weights share", s.Weights, false},
		{"schedule biases share", s.Vectors, false}, {"schedule end factor", s.EndFactor, false},
		{"weight decay", c.WeightDecay, false}, {"InfoNCE temperature", c.InfoNCE, false},
		{"max bad fraction", c.Data.MaxBadFraction, false}, {"loss scale", c.LossScale, false},
		{"smallest crop", c.Data.CropMin, false}, {"jitter strength", c.Data.Jitter, false},
		{"validation fraction", c.Data.Validation.Fraction, false}} {
		if !finite(f.v) || f.v < 0 || (f.open && f.v == 0) {
			bad("train: %s %v: must be a finite number %s", f.name, f.v, map[bool]string{true: "> 0", false: "≥ 0"}[f.open])
		}
	}
	if c.Data.MaxBadFraction > 1 {
		bad("train: max bad fraction %v: a share is at most 1", c.Data.MaxBadFraction)
	}
	if v := c.Data.Validation; v.Fraction >= 1 {
		bad("train: validation fraction %v: a share of the training images below 1", v.Fraction)
	} else if v.Fraction == 0 && (v.Seed != 0 || v.Images != 0) {
		bad("train: validation seed %d without a validation fraction: no images are held out, the seed would be ignored", v.Seed)
	}
	if c.Data.MaxPixels == 0 || c.Data.MaxPixels < -1 {
		bad("train: max pixels %d: want a positive limit, or -1 for none", c.Data.MaxPixels)
	}
	switch {
	case c.Batch < 2:
		bad("train: batch %d: at least 2 pairs (BatchNorm and the loss normalise over the batch)", c.Batch)
	case c.Epochs < 1:
		bad("train: epochs %d: at least 1", c.Epochs)
	case c.Steps < 0:
		bad("train: steps %d: 0 (all epochs) or more", c.Steps)
	case c.Data.Size < 0 || (c.Data.Size > 0 && c.Data.Size < 8):
		bad("train: size %d: 0 (the preset's) or at least 8 pixels", c.Data.Size)
	case c.Data.Workers < 0:
		bad("train: workers %d: 0 (one per CPU) or more", c.Data.Workers)
	}
	for _, err := range []error{c.Precision.Check(), c.Optimizer.Check(), c.Data.Augment.Check(), c.Data.AugmentOn.Check(), c.Data.Without.Check()} {
		if err != nil {
			errs = append(errs, err)
		}
	}
	if !slices.Contains(models.Archs, c.Model.Arch) {
		bad("train: architecture %q: choose one of %s", c.Model.Arch, strings.Join(models.Archs, ", "))
	}
	if st := c.Model.Stem; st != "" && st != models.ImageNetStem && st != models.SmallStem {
		bad("train: stem %q: want %s or %s", st, models.ImageNetStem, models.SmallStem)
	}
	if c.InfoNCE > 0 && (c.Loss.RedundancyOnly || c.Loss.Norm != loss.BatchNorm || c.Loss.Lambda != loss.DefaultLambda || c.Loss.Scale != 1) {
		bad("train: InfoNCE replaces the Barlow Twins loss; its λ, scale, normalisation and redundancy-only settings would be ignored")
	}
	return errs
}
