package eval

import (
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"

	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/layers"
	"github.com/bt-org/bt/models"
	"github.com/bt-org/bt/pipeline"
)

// Features are representations of a dataset with their labels.
type Features struct {
	X      []float32 // [N, Dim]
	Labels []int32   // [N]
	Index  []int     // [N] the images' indices in the loader's dataset
	N, Dim int
}

// ExtractFeatures runs backbone in evaluation mode (BatchNorm with running
// statistics, nothing kept for a backward pass) over every batch of an
// evaluation loader and returns the representations. act is the type of
// the backbone's activations: gpu.F16 is mixed precision (f32 arithmetic
// and representations), where d.F16.
func ExtractFeatures(d *gpu.Device, backbone *models.ResNet, loader *pipeline.Loader, act gpu.DType) (*Features, error) {
	f := &Features{Dim: backbone.Dim}
	for {
		b, err := loader.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		v, err := Represent(d, backbone, b.A, b.N, b.C, b.H, b.W, act)
		if err != nil {
			return nil, fmt.Errorf("eval: extracting features: %w", err)
		}
		f.X = append(f.X, v...)
		f.Labels = append(f.Labels, b.Labels...)
		f.Index = append(f.Index, b.Index...)
		f.N += b.N
		loader.Recycle(b)
	}
	if f.N == 0 {
		return nil, errors.New("eval: the evaluation loader gave no images")
	}
	return f, nil
}

// Represent runs backbone in evaluation mode on x [n, c, h, w], images
// already preprocessed, with activations of type act, and returns their
// representations [n, Dim].
func Represent(d *gpu.Device, backbone *models.ResNet, x []float32, n, c, h, w int, act gpu.DType) ([]float32, error) {
	if len(x) != n*c*h*w {
		return nil, fmt.Errorf("eval: %d values for %d images of %d×%d×%d", len(x), n, c, h, w)
	}
	xt, err := d.FromSlice(x, n, c, h, w)
	if err != nil {
		return nil, err
	}
	defer xt.Release()
	repr, err := d.NewTensor(n, backbone.Dim)
	if err != nil {
		return nil, err
	}
	defer repr.Release()
	p := models.NewPassOf(d, false, act)
	defer p.Release()
	if err := d.Run(func(r *gpu.Recorder) error { return backbone.Forward(r, p, repr, xt, n, h, w) }); err != nil {
		return nil, err
	}
	return repr.Download()
}

// normalised returns the rows of x scaled to unit length.
func normalised(x []float32, n, dim int) []float32 {
	out := make([]float32, len(x))
	for i := range n {
		row := x[i*dim : (i+1)*dim]
		s := 0.0
		for _, v := range row {
			s += float64(v) * float64(v)
		}
		inv := float32(1 / math.Max(math.Sqrt(s), 1e-12))
		for j, v := range row {
			out[i*dim+j] = v * inv
		}
	}
	return out
}

// knnChunk bounds the rows of one similarity block so that it stays well
// inside any adapter's binding limit (16 Mi floats).
const knnChunk = 4096

// KNN classifies every test representation by a weighted vote of its k
// nearest training representations under cosine similarity, each neighbour
// weighing exp(similarity/temperature): the monitor of InstDisc, lightly
// and solo-learn (k 200, temperature 0.07 by default there). It returns the
// top-1 accuracy for each k in ks. Similarities are computed on the device
// in blocks; the neighbours are kept on the host.
func KNN(d *gpu.Device, train, test *Features, classes int, ks []int, temperature float64) ([]float64, error) {
	if train.Dim != test.Dim {
		return nil, fmt.Errorf("eval: kNN between %d- and %d-dimensional features", train.Dim, test.Dim)
	}
	if err := checkLabels("kNN", classes, train, test); err != nil {
		return nil, err
	}
	if len(ks) == 0 || slices.Max(ks) < 1 {
		return nil, errors.New("eval: kNN needs k ≥ 1")
	}
	kmax := min(slices.Max(ks), train.N)
	dim := train.Dim
	trn, tst := normalised(train.X, train.N, dim), normalised(test.X, test.N, dim)
	type neighbour struct {
		sim   float32
		label int32
	}
	// best[i] holds test row i's nearest neighbours, most similar first.
	best := make([][]neighbour, test.N)
	for t0 := 0; t0 < test.N; t0 += knnChunk {
		tn := min(knnChunk, test.N-t0)
		tt, err := d.FromSlice(tst[t0*dim:(t0+tn)*dim], tn, dim)
		if err != nil {
			return nil, err
		}
		for r0 := 0; r0 < train.N; r0 += knnChunk {
			rn := min(knnChunk, train.N-r0)
			rt, err := d.FromSlice(trn[r0*dim:(r0+rn)*dim], rn, dim)
			if err != nil {
				tt.Release()
				return nil, err
			}
			sims, err := d.NewTensor(tn, rn)
			if err == nil {
				err = d.Run(func(r *gpu.Recorder) error {
					return gpu.Gemm(r, sims, tt, rt, gpu.GemmOp{M: tn, N: rn, K: dim, TransB: true, Alpha: 1})
				})
			}
			var s []float32
			if err == nil {
				s, err = sims.Download()
			}
			rt.Release()
			sims.Release()
			if err != nil {
				tt.Release()
				return nil, err
			}
			for i := range tn {
				nb := best[t0+i]
				for j, v := range s[i*rn : (i+1)*rn] {
					if len(nb) == kmax && v <= nb[kmax-1].sim {
						continue
					}
					at, _ := slices.BinarySearchFunc(nb, v, func(a neighbour, v float32) int {
						if a.sim > v {
							return -1
						}
						return 1
					})
					if len(nb) < kmax {
						nb = append(nb, neighbour{})
					}
					copy(nb[at+1:], nb[at:len(nb)-1])
					nb[at] = neighbour{v, train.Labels[r0+j]}
				}
				best[t0+i] = nb
			}
		}
		tt.Release()
	}
	acc := make([]float64, len(ks))
	votes := make([]float64, classes)
	for ki, k := range ks {
		k = min(k, kmax)
		correct := 0
		for i, nb := range best {
			clear(votes)
			for _, x := range nb[:k] {
				if x.label >= 0 && int(x.label) < classes {
					votes[x.label] += math.Exp(float64(x.sim) / temperature)
				}
			}
			if int32(argmax(votes)) == test.Labels[i] {
				correct++
			}
		}
		acc[ki] = float64(correct) / float64(test.N)
	}
	return acc, nil
}

// checkLabels makes sure every label names one of the classes: evaluation
// needs labelled data.
func checkLabels(what string, classes int, fs ...*Features) error {
	for _, f := range fs {
		for i, l := range f.Labels {
			if l < 0 || int(l) >= classes {
				return fmt.Errorf("eval: %s: image %d has label %d, outside 0…%d; evaluation needs a labelled dataset", what, i, l, classes-1)
			}
		}
	}
	return nil
}

func argmax(v []float64) int {
	best := 0
	for i, x := range v {
		if x > v[best] {
			best = i
		}
	}
	return best
}

// ProbeConfig is the linear evaluation protocol: SGD with momentum on a
// linear classifier over frozen representations, cosine learning rate over
// the epochs, weights initialised from N(0, 0.01²) and a zero bias. The
// defaults (DefaultProbeConfig) are the official evaluate.py's.
type ProbeConfig struct {
	Epochs      int
	Batch       int
	LR          float64
	Momentum    float64
	WeightDecay float64
	Seed        uint64
}

// DefaultProbeConfig is the paper's linear evaluation: 100 epochs, batch
// 256, lr 0.3 with cosine decay, momentum 0.9, weight decay 1e-6.
func DefaultProbeConfig() ProbeConfig {
	return ProbeConfig{Epochs: 100, Batch: 256, LR: 0.3, Momentum: 0.9, WeightDecay: 1e-6, Seed: 1}
}

// ProbeResult is a classifier's accuracy on the test features.
type ProbeResult struct {
	Top1, Top5 float64
}

// LinearProbe trains a linear classifier on train's features (extracted
// once: the fast mode of the linear evaluation) and measures it on test's.
// The features are first standardised with the training set's statistics,
// so that any backbone's, random or pretrained, is probed on equal terms.
func LinearProbe(d *gpu.Device, train, test *Features, classes int, cfg ProbeConfig) (ProbeResult, error) {
	if train.Dim != test.Dim {
		return ProbeResult{}, fmt.Errorf("eval: probe between %d- and %d-dimensional features", train.Dim, test.Dim)
	}
	if cfg.Epochs < 1 || cfg.Batch < 1 || classes < 2 {
		return ProbeResult{}, fmt.Errorf("eval: probe needs epochs ≥ 1, batch ≥ 1 and 2 or more classes; got %d, %d, %d", cfg.Epochs, cfg.Batch, classes)
	}
	if err := checkLabels("probe", classes, train, test); err != nil {
		return ProbeResult{}, err
	}
	train, test = standardise(train, test)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9b))
	dim := train.Dim
	bs := min(cfg.Batch, train.N)
	lin, err := newHead(d, rng, dim, classes)
	if err != nil {
		return ProbeResult{}, err
	}
	defer lin.Release()
	var release []func()
	defer func() {
		for _, f := range release {
			f()
		}
	}()
	tensor := func(shape ...int) *gpu.Tensor {
		if err != nil {
			return nil
		}
		var t *gpu.Tensor
		if t, err = d.NewTensor(shape...); err == nil {
			release = append(release, t.Release)
		}
		return t
	}
	x, y, logits, dlogits := tensor(bs, dim), tensor(bs), tensor(bs, classes), tensor(bs, classes)
	if err != nil {
		return ProbeResult{}, err
	}
	opt, err := optim.NewSGD(d, lin.Params(), optim.SGDConfig{WeightDecay: cfg.WeightDecay, Momentum: cfg.Momentum})
	if err != nil {
		return ProbeResult{}, err
	}
	defer opt.Release()

	perm := make([]int, train.N)
	xb, yb := make([]float32, bs*dim), make([]float32, bs)
	for epoch := range cfg.Epochs {
		lr := float32(cfg.LR * 0.5 * (1 + math.Cos(math.Pi*float64(epoch)/float64(cfg.Epochs))))
		for i := range perm {
			perm[i] = i
		}
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		// Whole batches only: the last partial one is dropped, as a
		// fixed-size step needs, and reshuffled into the next epoch.
		for b0 := 0; b0+bs <= train.N; b0 += bs {
			for i, idx := range perm[b0 : b0+bs] {
				copy(xb[i*dim:(i+1)*dim], train.X[idx*dim:(idx+1)*dim])
				yb[i] = float32(train.Labels[idx])
			}
			if err := x.Upload(xb); err != nil {
				return ProbeResult{}, err
			}
			if err := y.Upload(yb); err != nil {
				return ProbeResult{}, err
			}
			if err := d.Run(func(r *gpu.Recorder) error {
				if err := layers.ZeroGrad(r, lin.Params()); err != nil {
					return err
				}
				if err := lin.Forward(r, logits, x, bs); err != nil {
					return err
				}
				if err := layers.CrossEntropyBackward(r, dlogits, logits, y, bs, classes); err != nil {
					return err
				}
				if err := lin.Backward(r, nil, dlogits, x, bs); err != nil {
					return err
				}
				return opt.Step(r, lr, lr)
			}); err != nil {
				return ProbeResult{}, err
			}
		}
	}
	return classify(d, lin, test, classes)
}

// standardise returns copies of train and test with every dimension
// shifted and scaled by the training set's mean and standard deviation, as
// BatchNorm without affine parameters before the classifier does in
// several SSL codebases. An SGD probe with a fixed learning rate is badly
// conditioned on features of another scale: without this it scored random
// features 15 points below kNN on the same features, and the gain of
// pretraining over them looked larger than it is.
func standardise(train, test *Features) (*Features, *Features) {
	dim := train.Dim
	mean, inv := make([]float64, dim), make([]float64, dim)
	for i := range train.N {
		for j, v := range train.X[i*dim : (i+1)*dim] {
			mean[j] += float64(v)
		}
	}
	for j := range mean {
		mean[j] /= float64(train.N)
	}
	for i := range train.N {
		for j, v := range train.X[i*dim : (i+1)*dim] {
			e := float64(v) - mean[j]
			inv[j] += e * e
		}
	}
	for j := range inv {
		inv[j] = 1 / math.Sqrt(inv[j]/float64(train.N)+1e-5)
	}
	scaled := func(f *Features) *Features {
		out := *f
		out.X = make([]float32, len(f.X))
		for i := range f.N {
			for j, v := range f.X[i*dim : (i+1)*dim] {
				out.X[i*dim+j] = float32((float64(v) - mean[j]) * inv[j])
			}
		}
		return &out
	}
	return scaled(train), scaled(test)
}

// classify measures a trained classifier's top-1 and top-5 accuracy.
func classify(d *gpu.Device, lin *layers.Linear, test *Features, classes int) (ProbeResult, error) {
	dim := test.Dim
	var top1, top5 int
	for t0 := 0; t0 < test.N; t0 += knnChunk {
		n := min(knnChunk, test.N-t0)
		x, err := d.FromSlice(test.X[t0*dim:(t0+n)*dim], n, dim)
		if err != nil {
			return ProbeResult{}, err
		}
		logits, err := d.NewTensor(n, classes)
		if err == nil {
			err = d.Run(func(r *gpu.Recorder) error { return lin.Forward(r, logits, x, n) })
		}
		var v []float32
		if err == nil {
			v, err = logits.Download()
		}
		x.Release()
		logits.Release()
		if err != nil {
			return ProbeResult{}, err
		}
		for i := range n {
			row := v[i*classes : (i+1)*classes]
			label := test.Labels[t0+i]
			higher := 0
			for _, s := range row {
				if s > row[label] {
					higher++
				}
			}
			if higher == 0 {
				top1++
			}
			if higher < 5 {
				top5++
			}
		}
	}
	return ProbeResult{Top1: float64(top1) / float64(test.N), Top5: float64(top5) / float64(test.N)}, nil
}
