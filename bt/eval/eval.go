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
// evaluation loader and returns the representations. It runs a copy with
// the BatchNorms folded into the convolutions (models.Fold), which gives
// the same representations up to f32 rounding in fewer passes. act is the type of
// the backbone's activations: gpu.F16 is mixed precision (f32 arithmetic
// and representations), where d.F16.
//
// Each batch's representations come back through a Readback collected
// after the next batch has been submitted, so the device runs one batch
// while the host takes the one before and the loader prepares the next.
func ExtractFeatures(d *gpu.Device, backbone *models.ResNet, loader *pipeline.Loader, act gpu.DType) (*Features, error) {
	f := &Features{Dim: backbone.Dim}
	tr := d.Trace()
	span := tr.Begin("fold BatchNorm")
	backbone, err := models.Fold(backbone)
	span.End()
	if err != nil {
		return nil, fmt.Errorf("eval: extracting features: %w", err)
	}
	defer backbone.Release()
	// Two sets of buffers, used in turn: one batch's input is uploaded
	// while the batch before may still read the other's.
	type slot struct {
		x, repr *gpu.Tensor
		n       int
	}
	var slots [2]slot
	defer func() {
		for _, s := range slots {
			s.x.Release()
			s.repr.Release()
		}
	}()
	type inFlight struct {
		rb     *gpu.Readback
		labels []int32
		index  []int
		n      int
	}
	var pending *inFlight
	collect := func() error {
		if pending == nil {
			return nil
		}
		v, err := pending.rb.Wait()
		if err != nil {
			return fmt.Errorf("eval: extracting features: %w", err)
		}
		f.X = append(f.X, v...)
		f.Labels = append(f.Labels, pending.labels...)
		f.Index = append(f.Index, pending.index...)
		f.N += pending.n
		pending = nil
		return nil
	}
	for i := 0; ; i++ {
		span := tr.Begin("data wait")
		b, err := loader.Next()
		span.End()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		s := &slots[i%2]
		if s.x == nil || s.n != b.N || s.x.Len() != len(b.A) {
			s.x.Release()
			s.repr.Release()
			*s = slot{}
			if s.x, err = d.NewTensor(b.N, b.C, b.H, b.W); err == nil {
				s.repr, err = d.NewTensor(b.N, backbone.Dim)
			}
			if err != nil {
				return nil, err
			}
			s.n = b.N
		}
		if len(b.A) != b.N*b.C*b.H*b.W {
			return nil, fmt.Errorf("eval: %d values for %d images of %d×%d×%d", len(b.A), b.N, b.C, b.H, b.W)
		}
		if err := s.x.Upload(b.A); err != nil {
			return nil, err
		}
		next := &inFlight{labels: slices.Clone(b.Labels), index: slices.Clone(b.Index), n: b.N}
		loader.Recycle(b)
		r, err := d.Record(false)
		if err != nil {
			return nil, err
		}
		span = tr.Begin("record")
		p := models.NewPassOf(d, false, act)
		err = backbone.Forward(r, p, s.repr, s.x, s.n, b.H, b.W)
		p.Release()
		span.End()
		if err == nil {
			next.rb, err = r.Readback(s.repr)
		}
		if err != nil {
			r.Discard()
			return nil, fmt.Errorf("eval: extracting features: %w", err)
		}
		if err := r.Submit(); err != nil {
			return nil, err
		}
		if err := collect(); err != nil {
			return nil, err
		}
		pending = next
	}
	if err := collect(); err != nil {
		return nil, err
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
	// One block of similarities is on the device while the host merges the
	// block before into best.
	type block struct {
		t0, tn, r0, rn int
		rb             *gpu.Readback
	}
	merge := func(bl *block) error {
		s, err := bl.rb.Wait()
		if err != nil {
			return err
		}
		span := d.Trace().Begin("top-k")
		defer span.End()
		for i := range bl.tn {
			nb := best[bl.t0+i]
			for j, v := range s[i*bl.rn : (i+1)*bl.rn] {
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
				nb[at] = neighbour{v, train.Labels[bl.r0+j]}
			}
			best[bl.t0+i] = nb
		}
		return nil
	}
	var pending *block
	var release []*gpu.Tensor
	defer func() {
		for _, t := range release {
			t.Release()
		}
	}()
	tensor := func(x []float32, shape ...int) (*gpu.Tensor, error) {
		var t *gpu.Tensor
		var err error
		if x == nil {
			t, err = d.NewTensor(shape...)
		} else {
			t, err = d.FromSlice(x, shape...)
		}
		if err == nil {
			release = append(release, t)
		}
		return t, err
	}
	for t0 := 0; t0 < test.N; t0 += knnChunk {
		tn := min(knnChunk, test.N-t0)
		tt, err := tensor(tst[t0*dim:(t0+tn)*dim], tn, dim)
		if err != nil {
			return nil, err
		}
		for r0 := 0; r0 < train.N; r0 += knnChunk {
			rn := min(knnChunk, train.N-r0)
			rt, err := tensor(trn[r0*dim:(r0+rn)*dim], rn, dim)
			if err != nil {
				return nil, err
			}
			sims, err := tensor(nil, tn, rn)
			if err != nil {
				return nil, err
			}
			r, err := d.Record(false)
			if err != nil {
				return nil, err
			}
			next := &block{t0: t0, tn: tn, r0: r0, rn: rn}
			err = gpu.Gemm(r, sims, tt, rt, gpu.GemmOp{M: tn, N: rn, K: dim, TransB: true, Alpha: 1})
			if err == nil {
				next.rb, err = r.Readback(sims)
			}
			if err != nil {
				r.Discard()
				return nil, err
			}
			if err := r.Submit(); err != nil {
				return nil, err
			}
			// The tensors go back to the pool now: whatever reuses them
			// is submitted, and so runs, after this block.
			for _, t := range release[1:] {
				t.Release()
			}
			release = release[:1]
			if pending != nil {
				if err := merge(pending); err != nil {
					return nil, err
				}
			}
			pending = next
		}
		tt.Release()
		release = release[:0]
	}
	if pending != nil {
		if err := merge(pending); err != nil {
			return nil, err
		}
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
	// On is where the classifier trains; the zero value is Auto.
	On Place
}

// Place is where a linear probe trains.
type Place int

const (
	// Auto trains on the host when the adapter is a CPU one (lavapipe):
	// a 64-wide head makes steps of a few hundred thousand multiply-adds,
	// less work than submitting them costs there.
	Auto Place = iota
	// Host trains with Go loops on the CPU.
	Host
	// Device trains with bt's kernels, one submission a step.
	Device
)

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
	defer d.Trace().Begin("linear probe").End()
	train, test = standardise(train, test)
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x9b))
	if cfg.On == Host || cfg.On == Auto && d.IsCPU() {
		return probeHost(rng, train, test, classes, cfg), nil
	}
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
			higher := outranked(v[i*classes:(i+1)*classes], int(test.Labels[t0+i]))
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

// probeHost is LinearProbe's training on the host: the same initial
// weights (drawn as newHead draws them), batches and updates (PyTorch's SGD
// with momentum, weight decay on weights and bias alike), in float32.
func probeHost(rng *rand.Rand, train, test *Features, classes int, cfg ProbeConfig) ProbeResult {
	dim := train.Dim
	bs := min(cfg.Batch, train.N)
	w := make([]float32, classes*dim) // [classes, dim]
	for i := range w {
		w[i] = float32(0.01 * rng.NormFloat64())
	}
	bias := make([]float32, classes)
	gw, gb := make([]float32, len(w)), make([]float32, classes)
	mw, mb := make([]float32, len(w)), make([]float32, classes)
	logits := make([]float32, classes)
	wd, mom := float32(cfg.WeightDecay), float32(cfg.Momentum)
	perm := make([]int, train.N)
	for epoch := range cfg.Epochs {
		lr := float32(cfg.LR * 0.5 * (1 + math.Cos(math.Pi*float64(epoch)/float64(cfg.Epochs))))
		for i := range perm {
			perm[i] = i
		}
		rng.Shuffle(len(perm), func(i, j int) { perm[i], perm[j] = perm[j], perm[i] })
		for b0 := 0; b0+bs <= train.N; b0 += bs {
			clear(gw)
			clear(gb)
			for _, idx := range perm[b0 : b0+bs] {
				x := train.X[idx*dim : (idx+1)*dim]
				forward(logits, w, bias, x)
				softmax(logits)
				logits[train.Labels[idx]]--
				for c, g := range logits {
					g /= float32(bs)
					gb[c] += g
					row := gw[c*dim : (c+1)*dim]
					for j, v := range x {
						row[j] += g * v
					}
				}
			}
			step := func(p, g, m []float32) {
				for i := range p {
					d := g[i] + wd*p[i]
					m[i] = mom*m[i] + d
					p[i] -= lr * m[i]
				}
			}
			step(w, gw, mw)
			step(bias, gb, mb)
		}
	}
	var top1, top5 int
	for i := range test.N {
		forward(logits, w, bias, test.X[i*dim:(i+1)*dim])
		higher := outranked(logits, int(test.Labels[i]))
		if higher == 0 {
			top1++
		}
		if higher < 5 {
			top5++
		}
	}
	return ProbeResult{Top1: float64(top1) / float64(test.N), Top5: float64(top5) / float64(test.N)}
}

// outranked is how many classes a row of logits scores above label: 0 is
// a top-1 hit, under 5 a top-5 hit.
func outranked(row []float32, label int) int {
	higher := 0
	for _, s := range row {
		if s > row[label] {
			higher++
		}
	}
	return higher
}

// forward writes x·wᵀ + bias into logits.
func forward(logits, w, bias, x []float32) {
	dim := len(x)
	for c := range logits {
		row := w[c*dim : (c+1)*dim]
		var s float32
		for j, v := range x {
			s += row[j] * v
		}
		logits[c] = s + bias[c]
	}
}

// softmax replaces v by its softmax.
func softmax(v []float32) {
	m := slices.Max(v)
	var sum float32
	for i, x := range v {
		v[i] = float32(math.Exp(float64(x - m)))
		sum += v[i]
	}
	for i := range v {
		v[i] /= sum
	}
}
