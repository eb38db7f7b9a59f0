package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"codeberg.org/sbinet/npyio"
	"github.com/bt-org/bt/bt"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/strictjson"
	"github.com/bt-org/bt/pipeline"
	"gonum.org/v1/gonum/mat"
)

// evalFlags choose what is evaluated and how much of the data.
type evalFlags struct {
	trainN, testN int
	batch         int
	probe         bt.ProbeConfig
}

func (e *evalFlags) register(fs *flag.FlagSet) {
	fs.IntVar(&e.trainN, "eval-train", 0, "training images for kNN and the probe, sampled (0: all)")
	fs.IntVar(&e.testN, "eval-test", 0, "test images, sampled (0: all)")
	fs.IntVar(&e.batch, "eval-batch", 256, "images per feature-extraction batch")
	e.probe = bt.DefaultProbeConfig()
	fs.IntVar(&e.probe.Epochs, "probe-epochs", e.probe.Epochs, "linear-probe epochs")
	fs.Float64Var(&e.probe.LR, "probe-lr", e.probe.LR, "linear-probe learning rate (cosine-decayed)")
}

// evalResult is one backbone's evaluation.
type evalResult struct {
	knn    []float64 // at k = 20 and 200
	linear bt.ProbeResult
}

var knnK = []int{20, 200}

// features extracts the representations of a split of the flags' data,
// sampled to n images, with the preset's evaluation transform.
func features(d *gpu.Device, m *bt.Model, tf trainFlags, ef evalFlags, split string, n int) (*bt.Features, int, error) {
	ds, err := tf.dataset(split)
	if err != nil {
		return nil, 0, err
	}
	if ds.NumClasses() < 2 {
		return nil, 0, fmt.Errorf("evaluation needs labelled data; %s has no classes", tf.Data)
	}
	classes := ds.NumClasses()
	if ds, err = pipeline.Sample(ds, n, tf.Seed+7); err != nil {
		return nil, 0, err
	}
	view, err := pipeline.EvalPreset(tf.augmentPreset())
	if err != nil {
		return nil, 0, err
	}
	if tf.Size > 0 {
		view.Size = tf.Size
	}
	if c := view.Channels(); c != m.Config.InChannels {
		return nil, 0, fmt.Errorf("the backbone takes %d-channel images, but %s through the %s preset gives %d channels", m.Config.InChannels, tf.Data, tf.augmentPreset(), c)
	}
	loader, err := pipeline.NewEvalLoader(ds, view, pipeline.LoaderConfig{BatchSize: ef.batch, Workers: tf.Workers, Epochs: 1})
	if err != nil {
		return nil, 0, err
	}
	defer loader.Close()
	f, err := bt.ExtractFeatures(d, m.Backbone, loader)
	return f, classes, err
}

// evaluate runs kNN and the fast linear probe on a backbone.
func evaluate(d *gpu.Device, m *bt.Model, tf trainFlags, ef evalFlags) (evalResult, error) {
	train, classes, err := features(d, m, tf, ef, "train", ef.trainN)
	if err != nil {
		return evalResult{}, err
	}
	test, _, err := features(d, m, tf, ef, "test", ef.testN)
	if err != nil {
		return evalResult{}, err
	}
	var r evalResult
	if r.knn, err = bt.KNN(d, train, test, classes, knnK, 0.07); err != nil {
		return r, err
	}
	r.linear, err = bt.LinearProbe(d, train, test, classes, ef.probe)
	return r, err
}

// loadModel builds the model of a checkpoint and loads it, or, with random
// set, the flags' model at its random initialisation.
func loadModel(d *gpu.Device, ckptPath string, random bool, tf *trainFlags) (*bt.Model, error) {
	if random {
		view, err := pipeline.EvalPreset(tf.augmentPreset())
		if err != nil {
			return nil, err
		}
		size := view.Size
		if tf.Size > 0 {
			size = tf.Size
		}
		return bt.NewModel(d, tf.modelConfig(view.Channels(), size))
	}
	if ckptPath == "" {
		return nil, errors.New("give -checkpoint (from bt pretrain) or -random for the random-initialisation baseline")
	}
	c, err := bt.LoadCheckpoint(ckptPath)
	if err != nil {
		return nil, err
	}
	if c.State.Model.Arch == "" {
		return nil, fmt.Errorf("%s has no model settings; was it written by bt pretrain?", ckptPath)
	}
	if len(c.State.Train) > 0 {
		// Evaluate on the run's data and preset unless the flags say otherwise.
		var saved trainFlags
		if err := strictjson.Decode(c.State.Train, &saved); err != nil {
			return nil, fmt.Errorf("%s: its run settings: %v", ckptPath, err)
		}
		if tf.Data == "" {
			*tf = saved
		}
	}
	m, err := bt.NewModel(d, c.State.Model)
	if err != nil {
		return nil, err
	}
	if err := c.Restore(m, nil); err != nil {
		m.Release()
		return nil, err
	}
	return m, nil
}

func runEval(args []string) error {
	fs, adapter := newFlags("eval", "Evaluates a pretrained backbone (or a randomly initialised one) with weighted kNN and a linear probe on frozen features, or writes its features to .npy.\n\nUsage: bt eval [flags] [knn|linear|semi|all|embed]")
	var tf trainFlags
	tf.register(fs)
	var ef evalFlags
	ef.register(fs)
	fast := fs.Bool("fast", false, "linear: train on features extracted once, without augmentation, instead of the paper's protocol (random crops and flips every epoch)")
	labels := fs.Float64("labels", 1, "semi: percentage of the training labels to fine-tune on (the paper: 1 or 10)")
	labelFile := fs.String("label-file", "", "semi: file of training-image indices (one per line) to use instead of a random -labels subset")
	ckpt := fs.String("checkpoint", "", "checkpoint from bt pretrain")
	random := fs.Bool("random", false, "evaluate the random initialisation instead (the baseline)")
	out := fs.String("out", "runs/embed", "directory for embed's features.npy and labels.npy")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mode := "all"
	if fs.NArg() > 0 {
		mode = fs.Arg(0)
	}
	if mode != "all" && mode != "knn" && mode != "linear" && mode != "semi" && mode != "embed" {
		return fmt.Errorf("unknown evaluation %q: want knn, linear, semi, all or embed", mode)
	}
	// Flags the user set explicitly win over a checkpoint's saved settings.
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	if !explicit["data"] {
		tf.Data = ""
	}
	d, err := gpu.Open(gpu.Options{Adapter: *adapter})
	if err != nil {
		return err
	}
	defer d.Release()
	if tf.Data == "" && *random {
		tf.Data = "fashion-mnist"
	}
	m, err := loadModel(d, *ckpt, *random, &tf)
	if err != nil {
		return err
	}
	defer m.Release()
	if tf.Data == "" {
		tf.Data = "fashion-mnist"
	}
	fmt.Printf("model    %s\ndata     %s\n", m.Describe(), tf.Data)
	if mode == "embed" {
		return embed(d, m, tf, ef, *out)
	}
	if mode == "semi" || (mode == "linear" && !*fast) {
		return supervised(d, m, tf, ef, mode == "semi", *labels, *labelFile)
	}
	train, classes, err := features(d, m, tf, ef, "train", ef.trainN)
	if err != nil {
		return err
	}
	test, _, err := features(d, m, tf, ef, "test", ef.testN)
	if err != nil {
		return err
	}
	if mode == "knn" || mode == "all" {
		acc, err := bt.KNN(d, train, test, classes, knnK, 0.07)
		if err != nil {
			return err
		}
		fmt.Printf("kNN      k=20 %.2f%%   k=200 %.2f%%   (cosine, temperature 0.07; %d train, %d test)\n", 100*acc[0], 100*acc[1], train.N, test.N)
	}
	if mode == "all" || mode == "linear" {
		r, err := bt.LinearProbe(d, train, test, classes, ef.probe)
		if err != nil {
			return err
		}
		fmt.Printf("linear   top-1 %.2f%%   top-5 %.2f%%   (%d epochs on frozen features)\n", 100*r.Top1, 100*r.Top5, ef.probe.Epochs)
	}
	return nil
}

// supervised runs the paper's linear evaluation (frozen backbone, random
// crops and flips) or its semi-supervised fine-tuning on a fraction of the
// labels.
func supervised(d *gpu.Device, m *bt.Model, tf trainFlags, ef evalFlags, semi bool, percent float64, labelFile string) error {
	train, err := tf.dataset("train")
	if err != nil {
		return err
	}
	test, err := tf.dataset("test")
	if err != nil {
		return err
	}
	classes := train.NumClasses()
	if classes < 2 {
		return fmt.Errorf("evaluation needs labelled data; %s has no classes", tf.Data)
	}
	cfg := bt.LinearConfig()
	what := "linear (frozen backbone, random crops and flips)"
	if semi {
		cfg = bt.SemiConfig()
		switch {
		case labelFile != "":
			idx, err := readIndices(labelFile)
			if err != nil {
				return err
			}
			if train, err = pipeline.NewSubset(train, idx); err != nil {
				return fmt.Errorf("%s: %w", labelFile, err)
			}
		case percent > 0 && percent <= 100:
			if train, err = pipeline.Sample(train, int(float64(train.Len())*percent/100), tf.Seed+11); err != nil {
				return err
			}
		default:
			return fmt.Errorf("-labels %v: want a percentage in (0, 100]", percent)
		}
		what = fmt.Sprintf("semi-supervised (fine-tuning on %d labelled images)", train.Len())
	} else if ef.trainN > 0 {
		if train, err = pipeline.Sample(train, ef.trainN, tf.Seed+7); err != nil {
			return err
		}
	}
	if test, err = pipeline.Sample(test, ef.testN, tf.Seed+7); err != nil {
		return err
	}
	if ef.probe.Epochs != bt.DefaultProbeConfig().Epochs {
		cfg.Epochs = ef.probe.Epochs
	}
	cfg.Workers = tf.Workers
	view, err := pipeline.ProbePreset(tf.augmentPreset())
	if err != nil {
		return err
	}
	testView, err := pipeline.EvalPreset(tf.augmentPreset())
	if err != nil {
		return err
	}
	if tf.Size > 0 {
		view.Size, testView.Size = tf.Size, tf.Size
	}
	r, err := bt.TrainClassifier(d, m.Backbone, classes, train, view, test, testView, cfg)
	if err != nil {
		return err
	}
	fmt.Printf("%s: top-1 %.2f%%   top-5 %.2f%%   (%d epochs, %d test images)\n", what, 100*r.Top1, 100*r.Top5, cfg.Epochs, test.Len())
	return nil
}

// readIndices reads one image index per line.
func readIndices(path string) ([]int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var idx []int
	for i, line := range strings.Split(string(b), "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		v, err := strconv.Atoi(line)
		if err != nil {
			return nil, fmt.Errorf("%s line %d: %q is not an image index", path, i+1, line)
		}
		idx = append(idx, v)
	}
	if len(idx) == 0 {
		return nil, fmt.Errorf("%s lists no image indices", path)
	}
	return idx, nil
}

// embed writes the representations of both splits: features_SPLIT.npy
// [N, Dim] (float64: npyio writes 2-D arrays through gonum's mat.Dense) and
// labels_SPLIT.npy [N] int32, for NumPy and scikit-learn.
func embed(d *gpu.Device, m *bt.Model, tf trainFlags, ef evalFlags, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for _, split := range []string{"train", "test"} {
		n := ef.trainN
		if split == "test" {
			n = ef.testN
		}
		f, _, err := features(d, m, tf, ef, split, n)
		if err != nil {
			return err
		}
		x := make([]float64, len(f.X))
		for i, v := range f.X {
			x[i] = float64(v)
		}
		if err := writeNpy(filepath.Join(dir, "features_"+split+".npy"), mat.NewDense(f.N, f.Dim, x)); err != nil {
			return err
		}
		if err := writeNpy(filepath.Join(dir, "labels_"+split+".npy"), f.Labels); err != nil {
			return err
		}
		fmt.Printf("wrote    %s/features_%s.npy [%d, %d] and labels_%s.npy\n", dir, split, f.N, f.Dim, split)
	}
	return nil
}

func writeNpy(path string, v any) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := npyio.Write(f, v); err != nil {
		f.Close()
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return f.Close()
}
