package eval

import (
	"fmt"
	"io"
	"math"
	"math/rand/v2"

	"github.com/bt-org/bt/augment"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
)

// SupervisedConfig is a supervised evaluation on top of a backbone: the
// paper's linear evaluation (frozen backbone, LRBackbone 0) or its
// semi-supervised fine-tuning (backbone and classifier trained together).
// Both use SGD with momentum 0.9 and a cosine schedule over the epochs.
type SupervisedConfig struct {
	Epochs      int
	Batch       int
	LRHead      float64 // the classifier's learning rate
	LRBackbone  float64 // 0 freezes the backbone (in evaluation mode, as evaluate.py)
	WeightDecay float64
	Seed        uint64
	Workers     int
	// AugmentOnDevice renders the training views (the random crops and
	// flips) on the device, package augment, from a raw loader's 8-bit
	// images, instead of in the loader's workers: the same draws for a
	// seed, the pixels within float rounding (bt/train's
	// DataConfig.AugmentOn chooses).
	AugmentOnDevice bool
	// Activations is the type of the frozen backbone's activations: F16
	// for mixed precision. Fine-tuning (LRBackbone > 0) trains in f32.
	Activations gpu.DType
}

// LinearConfig is the paper's linear evaluation: 100 epochs, batch 256,
// classifier lr 0.3, weight decay 1e-6, frozen backbone.
func LinearConfig() SupervisedConfig {
	return SupervisedConfig{Epochs: 100, Batch: 256, LRHead: 0.3, WeightDecay: 1e-6, Seed: 1}
}

// SemiConfig is the paper's semi-supervised fine-tuning: 20 epochs,
// backbone lr 0.005, classifier lr 0.5, no weight decay.
func SemiConfig() SupervisedConfig {
	return SupervisedConfig{Epochs: 20, Batch: 256, LRHead: 0.5, LRBackbone: 0.005, Seed: 1}
}

// TrainClassifier trains a linear classifier (initialised from N(0, 0.01²)
// with a zero bias) on backbone's representations of train, seen through
// view (random crops and flips for the paper's protocols), fine-tuning the
// backbone too when cfg.LRBackbone > 0, and measures it on test seen
// through testView.
func TrainClassifier(d *gpu.Device, backbone *models.ResNet, classes int, train pipeline.Dataset, view pipeline.ViewConfig,
	test pipeline.Dataset, testView pipeline.ViewConfig, cfg SupervisedConfig) (ProbeResult, error) {
	if cfg.Epochs < 1 || cfg.Batch < 2 || classes < 2 {
		return ProbeResult{}, fmt.Errorf("eval: classifier training needs epochs ≥ 1, batch ≥ 2 and 2 or more classes")
	}
	bs := min(cfg.Batch, train.Len())
	finetune := cfg.LRBackbone > 0
	if finetune && cfg.Activations != gpu.F32 {
		return ProbeResult{}, fmt.Errorf("eval: fine-tuning trains the backbone in f32, not with %v activations", cfg.Activations)
	}
	rng := rand.New(rand.NewPCG(cfg.Seed, 0xc1))
	head, err := newHead(d, rng, backbone.Dim, classes)
	if err != nil {
		return ProbeResult{}, err
	}
	defer head.Release()
	headOpt, err := optim.NewSGD(d, head.Params(), optim.SGDConfig{WeightDecay: cfg.WeightDecay, Momentum: 0.9})
	if err != nil {
		return ProbeResult{}, err
	}
	defer headOpt.Release()
	var bbOpt optim.Optimizer
	if finetune {
		if bbOpt, err = optim.NewSGD(d, backbone.Params(), optim.SGDConfig{WeightDecay: cfg.WeightDecay, Momentum: 0.9}); err != nil {
			return ProbeResult{}, err
		}
		defer bbOpt.Release()
	}
	c, size := view.Channels(), view.Size
	var tensors []*gpu.Tensor
	defer func() {
		for _, t := range tensors {
			t.Release()
		}
	}()
	alloc := func(shape ...int) *gpu.Tensor {
		t, e := d.NewTensor(shape...)
		if e != nil && err == nil {
			err = e
		}
		tensors = append(tensors, t)
		return t
	}
	x, y := alloc(bs, c, size, size), alloc(bs)
	repr, dRepr := alloc(bs, backbone.Dim), alloc(bs, backbone.Dim)
	logits, dLogits := alloc(bs, classes), alloc(bs, classes)
	if err != nil {
		return ProbeResult{}, err
	}
	in, err := newInputs(d, train, view, pipeline.LoaderConfig{BatchSize: bs, Workers: cfg.Workers, Seed: cfg.Seed,
		Shuffle: true, DropLast: true, Epochs: cfg.Epochs}, cfg.AugmentOnDevice, x)
	if err != nil {
		return ProbeResult{}, err
	}
	defer in.close()
	labels := make([]float32, bs)
	for {
		b, err := in.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return ProbeResult{}, err
		}
		for i, l := range b.Labels {
			if l < 0 || int(l) >= classes {
				return ProbeResult{}, fmt.Errorf("eval: image %d has label %d, outside 0…%d", b.Index[i], l, classes-1)
			}
			labels[i] = float32(l)
		}
		q := 0.5 * (1 + math.Cos(math.Pi*float64(b.Epoch)/float64(cfg.Epochs)))
		lrHead, lrBackbone := float32(cfg.LRHead*q), float32(cfg.LRBackbone*q)
		if err := y.Upload(labels); err != nil {
			return ProbeResult{}, err
		}
		p := models.NewPassOf(d, finetune, cfg.Activations)
		err = d.Run(func(r *gpu.Recorder) error {
			if err := in.record(r, b); err != nil {
				return err
			}
			ps := head.Params()
			if finetune {
				ps = append(ps, backbone.Params()...)
			}
			if err := layers.ZeroGrad(r, ps); err != nil {
				return err
			}
			if err := backbone.Forward(r, p, repr, x, bs, size, size); err != nil {
				return err
			}
			if err := head.Forward(r, logits, repr, bs); err != nil {
				return err
			}
			if err := layers.CrossEntropyBackward(r, dLogits, logits, y, bs, classes); err != nil {
				return err
			}
			var dIn *gpu.Tensor
			if finetune {
				dIn = dRepr
			}
			if err := head.Backward(r, dIn, dLogits, repr, bs); err != nil {
				return err
			}
			if finetune {
				if err := backbone.Backward(r, p, dRepr); err != nil {
					return err
				}
				if err := bbOpt.Step(r, lrBackbone, lrBackbone); err != nil {
					return err
				}
			}
			return headOpt.Step(r, lrHead, lrHead)
		})
		p.Release()
		in.recycle(b)
		if err != nil {
			return ProbeResult{}, err
		}
	}
	// The test images go through the evaluation transform, a resize and
	// centre crop with nothing random, so they stay with the loader's
	// workers whatever AugmentOnDevice says.
	tl, err := pipeline.NewEvalLoader(test, testView, pipeline.LoaderConfig{BatchSize: bs, Workers: cfg.Workers, Epochs: 1})
	if err != nil {
		return ProbeResult{}, err
	}
	defer tl.Close()
	f, err := ExtractFeatures(d, backbone, tl, cfg.Activations)
	if err != nil {
		return ProbeResult{}, err
	}
	if err := checkLabels("classifier", classes, f); err != nil {
		return ProbeResult{}, err
	}
	return classify(d, head, f, classes)
}

// newHead is a linear classifier from dim to classes initialised as the
// official evaluate.py: weights from N(0, 0.01²), a zero bias.
func newHead(d *gpu.Device, rng *rand.Rand, dim, classes int) (*layers.Linear, error) {
	w := make([]float32, classes*dim)
	for i := range w {
		w[i] = float32(0.01 * rng.NormFloat64())
	}
	mk := func(name string, v []float32, shape ...int) (*layers.Param, error) {
		val, err := d.FromSlice(v, shape...)
		if err != nil {
			return nil, err
		}
		grad, err := d.FromSlice(make([]float32, len(v)), shape...)
		if err != nil {
			val.Release()
			return nil, err
		}
		return &layers.Param{Name: name, Value: val, Grad: grad}, nil
	}
	lin := &layers.Linear{In: dim, Out: classes}
	var err error
	if lin.Weight, err = mk("classifier.weight", w, classes, dim); err != nil {
		return nil, err
	}
	if lin.Bias, err = mk("classifier.bias", make([]float32, classes), classes); err != nil {
		lin.Weight.Release()
		return nil, err
	}
	return lin, nil
}

// inputs feeds a classifier's training batches into x [bs, C, Size, Size]:
// the loader's augmented views, uploaded, or with onDevice a raw loader's
// 8-bit images and draws, rendered by package augment inside the step's
// recording.
type inputs struct {
	loader *pipeline.Loader
	aug    *augment.Augmenter // nil: the loader augments
	x      *gpu.Tensor
}

func newInputs(d *gpu.Device, ds pipeline.Dataset, view pipeline.ViewConfig, lc pipeline.LoaderConfig, onDevice bool, x *gpu.Tensor) (*inputs, error) {
	lc.Raw = onDevice
	l, err := pipeline.NewEvalLoader(ds, view, lc)
	if err != nil {
		return nil, err
	}
	in := &inputs{loader: l, x: x}
	if onDevice {
		if in.aug, err = augment.NewEval(d, view); err != nil {
			l.Close()
			return nil, err
		}
	}
	return in, nil
}

// next returns the next batch, its views already in x unless they are
// rendered on the device (record).
func (in *inputs) next() (*pipeline.Batch, error) {
	b, err := in.loader.Next()
	if err != nil || in.aug != nil {
		return b, err
	}
	if err := in.x.Upload(b.A); err != nil {
		return nil, err
	}
	return b, nil
}

// record renders b's views into x, on the device path; the recording must
// be submitted before the next call.
func (in *inputs) record(r *gpu.Recorder, b *pipeline.Batch) error {
	if in.aug == nil {
		return nil
	}
	return in.aug.Record(r, b, in.x)
}

// recycle hands b back to the loader once its views are in x or recorded.
func (in *inputs) recycle(b *pipeline.Batch) { in.loader.Recycle(b) }

func (in *inputs) close() {
	in.loader.Close()
	if in.aug != nil {
		in.aug.Close()
	}
}
