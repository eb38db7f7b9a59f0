package eval

import (
	"fmt"

	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/pipeline"
)

// Ks are the neighbourhoods the kNN evaluations vote over, as lightly and
// solo-learn report them; Temperature weighs their votes.
var Ks = []int{20, 200}

// Temperature is the kNN evaluations' vote temperature.
const Temperature = 0.07

// Options choose how much of a run's data an evaluation takes and how.
type Options struct {
	TrainImages, TestImages int // sampled from their splits (0: all)
	Batch                   int // images per feature-extraction batch
	Probe                   ProbeConfig
	Activations             gpu.DType // the backbone's
	// Split is the split the figures are taken on: train.ValidationSplit
	// for choices, "" or train.TestSplit for final figures.
	Split string
	Seed  uint64 // of the samples
}

// On is the split the figures are taken on.
func (o Options) On() string {
	if o.Split == "" {
		return train.TestSplit
	}
	return o.Split
}

// Extract is the representations of split of data, sampled to n images
// (0: all), through m's backbone with the preset's evaluation transform,
// labelled or not, with the dataset the features' indices refer to.
func Extract(d *gpu.Device, m *train.Model, data train.DataConfig, split string, n int, o Options) (*Features, pipeline.Dataset, error) {
	ds, err := data.Open(split)
	if err != nil {
		return nil, nil, err
	}
	if ds, err = pipeline.Sample(ds, n, o.Seed+7); err != nil {
		return nil, nil, err
	}
	view, err := data.EvalView()
	if err != nil {
		return nil, nil, err
	}
	if c := view.Channels(); c != m.Config.InChannels {
		return nil, nil, fmt.Errorf("the backbone takes %d-channel images, but %s through the %s preset gives %d channels", m.Config.InChannels, data.Name, data.Preset(), c)
	}
	// The evaluation transform only resizes and centre-crops, nothing
	// random, so it stays with the loader's workers whatever -augment-on
	// says: the device path is for the training views' random crops.
	loader, err := pipeline.NewEvalLoader(ds, view, pipeline.LoaderConfig{BatchSize: o.Batch, Workers: data.Workers, Epochs: 1})
	if err != nil {
		return nil, nil, err
	}
	defer loader.Close()
	f, err := ExtractFeatures(d, m.Backbone, loader, o.Activations)
	return f, ds, err
}

// Labelled is Extract for an evaluation that needs labels: it refuses
// data without classes and returns how many there are.
func Labelled(d *gpu.Device, m *train.Model, data train.DataConfig, split string, n int, o Options) (*Features, int, error) {
	f, ds, err := Extract(d, m, data, split, n, o)
	if err != nil {
		return nil, 0, err
	}
	if ds.NumClasses() < 2 {
		return nil, 0, fmt.Errorf("this evaluation needs labelled data; %s has no classes (embed works on unlabelled images)", data.Name)
	}
	return f, ds.NumClasses(), nil
}

// Splits are a backbone's features of the training split and of the split
// its figures are taken on, extracted once for kNN and the linear probe.
type Splits struct {
	Train, Test *Features
	Classes     int
}

// ExtractSplits extracts o.TrainImages training images and o.TestImages of
// o.On().
func ExtractSplits(d *gpu.Device, m *train.Model, data train.DataConfig, o Options) (Splits, error) {
	var s Splits
	var err error
	if s.Train, s.Classes, err = Labelled(d, m, data, train.TrainSplit, o.TrainImages, o); err != nil {
		return s, err
	}
	s.Test, _, err = Labelled(d, m, data, o.On(), o.TestImages, o)
	return s, err
}

// KNN is weighted cosine kNN at Ks on the splits.
func (s Splits) KNN(d *gpu.Device) ([]float64, error) {
	return KNN(d, s.Train, s.Test, s.Classes, Ks, Temperature)
}

// Result is a backbone's kNN accuracies (at Ks) and fast linear probe.
type Result struct {
	KNN    []float64
	Linear ProbeResult
}

// Evaluate runs kNN and the fast linear probe on m's features of data.
func Evaluate(d *gpu.Device, m *train.Model, data train.DataConfig, o Options) (Result, error) {
	var r Result
	s, err := ExtractSplits(d, m, data, o)
	if err != nil {
		return r, err
	}
	if r.KNN, err = s.KNN(d); err != nil {
		return r, err
	}
	r.Linear, err = LinearProbe(d, s.Train, s.Test, s.Classes, o.Probe)
	return r, err
}

// Monitor evaluates a run's backbone with kNN every so many steps while it
// trains, as lightly and solo-learn report, on the run's choice split
// (train.DataConfig.ChoiceSplit).
type Monitor struct {
	Every       int // steps between checks
	TrainImages int // training images sampled; a fifth of that from the choice split
	// Report hears each check's accuracies at Ks after step (counted from
	// 1); train.Recorder.KNN records them.
	Report func(step int, acc []float64) error
}

// Hook is the monitor as a hook ("kNN monitor") for run's Loop, also run
// at the end; it goes before the hooks that record what it reports.
func (mo Monitor) Hook(d *gpu.Device, run *train.Run) train.Hook {
	return train.Hook{Name: "kNN monitor", Every: max(1, mo.Every), AtEnd: true, Fn: func(_ *train.Loop, ev train.Event) error {
		cfg := run.Config
		o := Options{TrainImages: mo.TrainImages, TestImages: max(1, mo.TrainImages/5), Batch: 256, Split: cfg.Data.ChoiceSplit(), Seed: cfg.Seed}
		s, err := ExtractSplits(d, run.Model, cfg.Data, o)
		if err != nil {
			return err
		}
		acc, err := s.KNN(d)
		if err != nil {
			return err
		}
		return mo.Report(ev.Step+1, acc)
	}}
}
