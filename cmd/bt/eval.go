package main

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/bt-org/bt/bt/eval"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
)

// registerEval registers the flags that size an evaluation.
func registerEval(fs *flag.FlagSet, o *eval.Options) {
	fs.Var(intFlag{&o.TrainImages, 0}, "eval-train", "training images for kNN and the probe, sampled (0: all)")
	fs.Var(intFlag{&o.TestImages, 0}, "eval-test", "test images, sampled (0: all)")
	o.Batch = 256
	fs.Var(intFlag{&o.Batch, 1}, "eval-batch", "images per feature-extraction batch")
	o.Probe = eval.DefaultProbeConfig()
	fs.Var(intFlag{&o.Probe.Epochs, 1}, "probe-epochs", "linear-probe epochs")
	fs.Var(floatFlag[float64]{p: &o.Probe.LR, min: 0, open: true}, "probe-lr", "linear-probe learning rate (cosine-decayed)")
}

// evalModes are bt eval's modes, in the order they run.
var evalModes = []string{"knn", "linear", "semi", "embed"}

// evalArgs are bt eval's flags.
type evalArgs struct {
	adapter        *string
	ckpt, arch     string
	random, fast   bool
	seed           uint64
	data           train.DataConfig
	o              eval.Options
	labels         float64
	labelFile, out string
	val            train.Validation
	precision      train.Precision
	tuning         tuneSource
	trace          traceFlags
	modes          []string
	explicit       map[string]bool
}

// evalFlags is bt eval's flag set over a.
func evalFlags(a *evalArgs) *flag.FlagSet {
	fs, adapter := newFlags("eval", "Evaluates a pretrained backbone (a bt checkpoint or an exported backbone), or a randomly initialised one,\nwith weighted kNN and a linear probe on frozen features, fine-tunes it on a fraction of the labels, or writes its\nfeatures to .npy.\n\nUsage: bt eval [flags] MODE... [flags]   (MODE: knn, linear, semi, embed, or all = knn and linear)")
	a.adapter = adapter
	fs.StringVar(&a.ckpt, "checkpoint", "", "checkpoint from bt pretrain, or a backbone from bt export")
	fs.BoolVar(&a.random, "random", false, "evaluate a random initialisation instead (the baseline): of the checkpoint's architecture, else -arch")
	data := &a.data
	*data = train.DataConfig{MaxBadFraction: pipeline.DefaultMaxBadFraction, MaxPixels: pipeline.DefaultMaxPixels, AugmentOn: train.AugmentAuto}
	fs.StringVar(&data.Name, "data", "", "dataset (default: the checkpoint's): fashion-mnist, mnist, cifar10, cifar100, folder, folder-unlabeled (embed only), synthetic")
	fs.StringVar(&data.Dir, "data-dir", "", "dataset directory (default: the checkpoint's, else "+filepath.Join(pipeline.DefaultDir, "<data>")+")")
	fs.Var(choiceFlag[pipeline.PresetName]{&data.Augment, append([]pipeline.PresetName{""}, pipeline.PresetNames()...)}, "augment", "preprocessing preset (default: the checkpoint's)")
	fs.Var(intFlag{&data.Size, 0}, "size", "image size (default: the checkpoint's)")
	fs.Var(intFlag{&data.Workers, 0}, "workers", "data-loading goroutines (default: the number of CPUs)")
	fs.Var(intFlag{&data.MaxPixels, -1}, "max-pixels", "refuse images with more pixels than this (-1: no limit)")
	fs.Var(choiceFlag[train.AugmentPlace]{&data.AugmentOn, train.AugmentPlaces()}, "augment-on", "linear and semi: where the training views' random crops and flips are made: cpu (the loader's workers), device (the GPU, from 8-bit images), auto (the device unless the adapter is a CPU)")
	fs.StringVar(&a.arch, "arch", "tiny", "with -random and no -checkpoint: the backbone")
	fs.Uint64Var(&a.seed, "seed", 1, "seed of the samples and, with -random, of the initialisation")
	registerEval(fs, &a.o)
	fs.BoolVar(&a.fast, "fast", false, "linear: train on features extracted once, without augmentation, instead of the paper's protocol (random crops and flips every epoch)")
	fs.Float64Var(&a.labels, "labels", 1, "semi: percentage of the training labels to fine-tune on (the paper: 1 or 10)")
	fs.StringVar(&a.labelFile, "label-file", "", "semi: file of training-image indices (one per line) to use instead of a random -labels subset")
	fs.StringVar(&a.out, "out", "runs/embed", "embed: directory for features_SPLIT.npy, labels_SPLIT.npy and names_SPLIT.txt")
	fs.Var(choiceFlag[string]{&a.o.Split, []string{train.TestSplit, train.ValidationSplit}}, "split",
		"the split the figures are taken on: test (the final figures) or validation (the images the checkpoint's run held out of pretraining, -val-fraction; for choosing settings) (default test)")
	fs.Var(floatFlag[float64]{p: &a.val.Fraction, min: 0, open: false, max: 0.9}, "val-fraction", "share of the training images held out of the probes' training as the validation split (default: the checkpoint's, recorded in its settings; 0 holds none out)")
	fs.Uint64Var(&a.val.Seed, "val-seed", 0, "with -val-fraction, the seed that draws the validation split's images")
	a.precision = train.F32
	fs.Var(choiceFlag[train.Precision]{&a.precision, train.Precisions()}, "precision", "the backbone's activations: f32, or f16 (mixed precision, f32 arithmetic and features; adapters with shader-f16); semi fine-tunes in f32")
	a.tuning.register(fs)
	a.trace.register(fs, false)
	setGroups(fs, []flagGroup{
		{"model", []string{"checkpoint", "random", "arch", "seed"}},
		{"data", []string{"data", "data-dir", "augment", "size", "workers", "max-pixels", "augment-on", "val-fraction", "val-seed"}},
		{"evaluation", []string{"split", "eval-train", "eval-test", "eval-batch", "probe-epochs", "probe-lr", "fast", "labels", "label-file", "out", "precision", "trace"}},
	})
	return fs
}

// parseEval parses bt eval's arguments and refuses flags that would be
// ignored or contradict each other, before anything is opened.
func parseEval(args []string) (*evalArgs, error) {
	a := &evalArgs{}
	fs := evalFlags(a)
	var err error
	if a.modes, err = parseInterleaved(fs, args); err != nil {
		return nil, err
	}
	a.explicit = map[string]bool{}
	fs.Visit(func(f *flag.Flag) { a.explicit[f.Name] = true })
	for flagName, mode := range map[string]string{"fast": "linear", "labels": "semi", "label-file": "semi", "out": "embed"} {
		if a.explicit[flagName] && !slices.Contains(a.modes, mode) {
			return nil, fmt.Errorf("-%s applies to the %s mode, which was not asked for", flagName, mode)
		}
	}
	switch {
	case a.random == (a.ckpt != "") && !(a.random && a.ckpt != ""):
		return nil, errors.New("give -checkpoint (from bt pretrain or bt export), -random for the random-initialisation baseline, or both for a random twin of the checkpoint's network")
	case a.explicit["arch"] && !(a.random && a.ckpt == ""):
		return nil, errors.New("-arch chooses the network of -random without -checkpoint; a checkpoint names its own")
	case a.explicit["val-seed"] && a.val.Fraction == 0:
		return nil, errors.New("-val-seed draws the images -val-fraction holds out; give both (a checkpoint's split is taken whole)")
	case a.explicit["split"] && slices.Equal(a.modes, []string{"embed"}):
		return nil, errors.New("-split chooses the split of the knn, linear and semi figures; embed writes every split")
	case a.precision == train.F16 && slices.Contains(a.modes, "semi"):
		return nil, errors.New("-precision f16: semi fine-tunes the backbone, which bt evaluates in f32; leave semi out or drop the flag")
	}
	a.o.Activations = train.Config{Precision: a.precision}.Activations()
	a.o.Seed = a.seed
	return a, nil
}

func runEval(args []string) (err error) {
	a, err := parseEval(args)
	if err != nil {
		return err
	}
	d, err := openDevice(*a.adapter)
	if err != nil {
		return err
	}
	defer d.Release()
	if err := a.tuning.apply(d, os.Stderr); err != nil {
		return err
	}
	if a.o.Activations == gpu.F16 && !d.F16 {
		return fmt.Errorf("-precision f16: %s has no shader-f16", d.Info.Name)
	}
	finish, err := a.trace.start(d)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, finish()) }()
	m, data, err := loadModel(d, a.ckpt, a.random, a.arch, a.seed, a.data)
	if err != nil {
		return err
	}
	defer m.Release()
	if a.explicit["val-fraction"] {
		data.Validation = a.val
	}
	if a.o.On() == train.ValidationSplit && data.Validation.Fraction == 0 {
		return errors.New("-split validation: no training images are held out: the checkpoint's run trained on them all (or records no split); give -val-fraction to hold some out of the probes' training")
	}
	fmt.Printf("model    %s\ndata     %s (%s preset); %s\nsplit    figures on the %s split\n", m.Describe(), data.Name, data.Preset(), data.Validation.Describe(), a.o.On())
	return a.evaluate(d, m, data)
}

// evaluate runs the modes asked for, in order, on m.
func (a *evalArgs) evaluate(d *gpu.Device, m *train.Model, data train.DataConfig) error {
	var fx eval.Splits
	for _, mode := range a.modes {
		span := d.Trace().Begin(mode)
		var err error
		switch {
		case mode == "embed":
			err = embed(d, m, data, a.o, a.out)
		case mode == "semi":
			err = supervised(d, m, data, a.o, true, a.labels, a.labelFile)
		case mode == "linear" && !a.fast:
			err = supervised(d, m, data, a.o, false, 0, "")
		default: // knn, and linear with -fast
			err = probe(d, m, data, a.o, mode, &fx)
		}
		span.End()
		if err != nil {
			return fmt.Errorf("%s: %w", mode, err)
		}
	}
	return nil
}

// parseInterleaved parses flags before, between and after the mode
// arguments, so that nothing typed after a mode is dropped; "all" is knn
// and linear. Modes run in evalModes' order, each once.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	asked := map[string]bool{}
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			break
		}
		mode := fs.Arg(0)
		switch {
		case mode == "all":
			asked["knn"], asked["linear"] = true, true
		case slices.Contains(evalModes, mode):
			asked[mode] = true
		default:
			return nil, fmt.Errorf("unknown evaluation %q%s: want knn, linear, semi, embed or all", mode, suggest(mode, append(evalModes, "all"), ""))
		}
		args = fs.Args()[1:]
	}
	var modes []string
	for _, m := range evalModes {
		if asked[m] {
			modes = append(modes, m)
		}
	}
	if len(modes) == 0 {
		modes = []string{"knn", "linear"}
	}
	return modes, nil
}

// sameClasses checks that the training data a checkpoint records, taken
// again by default, still has the classes it was trained with: a class
// folder added, removed or renamed since would give every later class
// another label. Data named by the flags is the user's choice and is not
// held to it.
func sameClasses(path string, c *train.Checkpoint, data train.DataConfig) error {
	if c.State.Dataset == nil {
		return nil // written before checkpoints recorded their data
	}
	ds, err := data.Open(train.TrainSplit)
	if err != nil {
		return err
	}
	now := pipeline.FingerprintOf(ds)
	if slices.Equal(now.Classes, c.State.Dataset.Classes) {
		return nil
	}
	was := *c.State.Dataset
	was.Counts, now.Counts = nil, nil
	return fmt.Errorf("%s was trained on %s at %s, whose classes have changed since: %s; give -data and -data-dir to evaluate on other data",
		path, data.Name, data.Dir, was.Diff(now))
}

// loadModel builds the model of a checkpoint (a run's or an exported
// backbone) and loads it, or a random initialisation of the checkpoint's
// network or of arch; data fills what the flags left unset from the
// checkpoint's data.
func loadModel(d *gpu.Device, path string, random bool, arch string, seed uint64, data train.DataConfig) (*train.Model, train.DataConfig, error) {
	var c *train.Checkpoint
	if path != "" {
		var err error
		if c, err = train.LoadCheckpoint(path); err != nil {
			return nil, data, err
		}
		if c.Model.Arch == "" {
			return nil, data, fmt.Errorf("%s records no model settings: it was not written by bt pretrain or bt export (a converted torchvision state dict starts pretraining with bt pretrain -init)", path)
		}
		// The backbone sees images prepared as in its training (preset,
		// size, normalisation) whatever data it is evaluated on, unless
		// the flags say otherwise.
		saved := c.Data
		if data.Name == "" {
			// The run's validation split, drawn again from its data.
			data.Name, data.Dir, data.Validation = saved.Name, saved.Dir, saved.Validation
			if err := sameClasses(path, c, data); err != nil {
				return nil, data, err
			}
		}
		if data.Augment == "" {
			data.Augment = saved.Preset()
		}
		if data.Size == 0 {
			data.Size = saved.Size
		}
	}
	if data.Name == "" {
		data.Name = "fashion-mnist"
	}
	mc := train.ModelConfig{Arch: arch, Projector: "8", Seed: seed}
	if c != nil {
		mc = c.Model
	}
	if c == nil {
		view, err := data.EvalView()
		if err != nil {
			return nil, data, err
		}
		mc.InChannels = view.Channels()
		if view.Size < 64 {
			mc.Stem = models.SmallStem
		}
	}
	m, err := train.NewModel(d, mc)
	if err != nil || random {
		return m, data, err
	}
	if err := c.RestoreBackbone(m); err != nil {
		m.Release()
		return nil, data, err
	}
	return m, data, nil
}

// probe runs kNN or the fast linear probe on features extracted once
// into fx.
func probe(d *gpu.Device, m *train.Model, data train.DataConfig, o eval.Options, mode string, fx *eval.Splits) error {
	if fx.Train == nil {
		var err error
		if *fx, err = eval.ExtractSplits(d, m, data, o); err != nil {
			return err
		}
	}
	trainSet, test := fx.Train, fx.Test
	if mode == "knn" {
		acc, err := fx.KNN(d)
		if err != nil {
			return err
		}
		fmt.Printf("kNN      k=20 %.2f%%   k=200 %.2f%%   (cosine, temperature 0.07; %d train, %d %s)\n", 100*acc[0], 100*acc[1], trainSet.N, test.N, o.On())
		if trainSet.N < 200 {
			fmt.Printf("         (k=200 votes with all %d training images: fewer than k)\n", trainSet.N)
		}
		return nil
	}
	r, err := eval.LinearProbe(d, trainSet, test, fx.Classes, o.Probe)
	if err != nil {
		return err
	}
	fmt.Printf("linear   top-1 %.2f%%   top-5 %.2f%%   (%d epochs on frozen features; %d train, %d %s)\n", 100*r.Top1, 100*r.Top5, o.Probe.Epochs, trainSet.N, test.N, o.On())
	return nil
}

// supervised runs the paper's linear evaluation (frozen backbone, random
// crops and flips) or its semi-supervised fine-tuning on a fraction of the
// labels.
func supervised(d *gpu.Device, m *train.Model, data train.DataConfig, o eval.Options, semi bool, percent float64, labelFile string) error {
	seed := o.Seed
	trainSet, err := data.Open("train")
	if err != nil {
		return err
	}
	test, err := data.Open(o.On())
	if err != nil {
		return err
	}
	classes := trainSet.NumClasses()
	if classes < 2 {
		return fmt.Errorf("this evaluation needs labelled data; %s has no classes", data.Name)
	}
	cfg := eval.LinearConfig()
	what := "linear (frozen backbone, random crops and flips)"
	if semi {
		cfg = eval.SemiConfig()
		switch {
		case labelFile != "":
			idx, err := readIndices(labelFile)
			if err != nil {
				return err
			}
			if trainSet, err = pipeline.NewSubset(trainSet, idx); err != nil {
				return fmt.Errorf("%s: %w", labelFile, err)
			}
		case percent > 0 && percent <= 100:
			if trainSet, err = pipeline.Sample(trainSet, int(float64(trainSet.Len())*percent/100), seed+11); err != nil {
				return err
			}
		default:
			return fmt.Errorf("-labels %v: want a percentage in (0, 100]", percent)
		}
		what = fmt.Sprintf("semi-supervised (fine-tuning on %d labelled images)", trainSet.Len())
	} else if o.TrainImages > 0 {
		if trainSet, err = pipeline.Sample(trainSet, o.TrainImages, seed+7); err != nil {
			return err
		}
	}
	if test, err = pipeline.Sample(test, o.TestImages, seed+7); err != nil {
		return err
	}
	if o.Probe.Epochs != eval.DefaultProbeConfig().Epochs {
		cfg.Epochs = o.Probe.Epochs
	}
	cfg.Workers = data.Workers
	cfg.AugmentOnDevice = data.OnDevice(d)
	cfg.Activations = o.Activations
	view, err := pipeline.ProbePreset(data.Preset())
	if err != nil {
		return err
	}
	testView, err := data.EvalView()
	if err != nil {
		return err
	}
	if data.Size > 0 {
		view.Size = data.Size
	}
	r, err := eval.TrainClassifier(d, m.Backbone, classes, trainSet, view, test, testView, cfg)
	if err != nil {
		return err
	}
	on := "the CPU"
	if cfg.AugmentOnDevice {
		on = "the device"
	}
	fmt.Printf("%s: top-1 %.2f%%   top-5 %.2f%%   (%d epochs, %d %s images, training views augmented on %s)\n", what, 100*r.Top1, 100*r.Top5, cfg.Epochs, test.Len(), o.On(), on)
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

// embed writes the representations of each split there is:
// features_SPLIT.npy [N, Dim] float32, labels_SPLIT.npy [N] int32 (-1 for
// unlabelled images) and names_SPLIT.txt, one image per line in row order
// (its file for folders, else dataset:index), for NumPy and scikit-learn.
// An unlabelled folder has only a train split.
func embed(d *gpu.Device, m *train.Model, data train.DataConfig, o eval.Options, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	splits := []string{train.TrainSplit, train.TestSplit}
	if data.Validation.Fraction > 0 {
		splits = []string{train.TrainSplit, train.ValidationSplit, train.TestSplit}
	}
	for _, split := range splits {
		n := o.TrainImages
		if split != train.TrainSplit {
			n = o.TestImages
			if strings.EqualFold(data.Name, "folder-unlabeled") {
				break
			}
		}
		f, ds, err := eval.Extract(d, m, data, split, n, o)
		if err != nil {
			return err
		}
		names := make([]byte, 0, 32*f.N)
		for _, i := range f.Index {
			names = append(names, nameLine(imageName(ds, data.Name, i))...)
			names = append(names, '\n')
		}
		for _, w := range []struct {
			file string
			err  error
		}{
			{"features_" + split + ".npy", writeNpy(filepath.Join(dir, "features_"+split+".npy"), "<f4", []int{f.N, f.Dim}, f.X)},
			{"labels_" + split + ".npy", writeNpy(filepath.Join(dir, "labels_"+split+".npy"), "<i4", []int{f.N}, f.Labels)},
			{"names_" + split + ".txt", os.WriteFile(filepath.Join(dir, "names_"+split+".txt"), names, 0o644)},
		} {
			if w.err != nil {
				return fmt.Errorf("writing %s: %w", w.file, w.err)
			}
		}
		fmt.Printf("wrote    %s [%d, %d] float32, labels_%s.npy and names_%s.txt\n", filepath.Join(dir, "features_"+split+".npy"), f.N, f.Dim, split, split)
	}
	return nil
}

// nameLine is a name as names_SPLIT.txt holds it, one to a line: as it
// is, unless it holds a line break or starts with a double quote, which
// would shift or misread the rows after it; then as a JSON string (in
// Python: json.loads(line) if line.startswith('"') else line). Files of
// ordinary names read as they always have.
func nameLine(name string) string {
	if !strings.ContainsAny(name, "\n\r") && !strings.HasPrefix(name, `"`) {
		return name
	}
	b, _ := json.Marshal(name) // a string always marshals
	return string(b)
}

// imageName names image i of ds: its file where it has one.
func imageName(ds pipeline.Dataset, dataset string, i int) string {
	if s, ok := ds.(*pipeline.Subset); ok {
		return imageName(s.Dataset, dataset, s.Indices[i])
	}
	if f, ok := ds.(interface{ Path(int) string }); ok {
		return f.Path(i)
	}
	return fmt.Sprintf("%s:%d", dataset, i)
}

// writeNpy writes a little-endian array as NumPy's .npy (format 1.0), for
// float32 and int32 data: npyio writes 2-D arrays only as float64.
func writeNpy[T float32 | int32](path, descr string, shape []int, v []T) error {
	dims := make([]string, len(shape))
	for i, s := range shape {
		dims[i] = strconv.Itoa(s)
	}
	tuple := strings.Join(dims, ", ")
	if len(shape) == 1 {
		tuple += ","
	}
	header := fmt.Sprintf("{'descr': '%s', 'fortran_order': False, 'shape': (%s), }", descr, tuple)
	// The magic, version and length take 10 bytes; the header is padded
	// with spaces and ends in a newline so the data starts 64-aligned.
	header += strings.Repeat(" ", 63-(10+len(header))%64) + "\n"
	var b bytes.Buffer
	b.WriteString("\x93NUMPY\x01\x00")
	binary.Write(&b, binary.LittleEndian, uint16(len(header)))
	b.WriteString(header)
	if err := binary.Write(&b, binary.LittleEndian, v); err != nil {
		return err
	}
	return os.WriteFile(path, b.Bytes(), 0o644)
}
