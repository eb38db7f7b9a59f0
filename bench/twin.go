package bench

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"time"
	"unicode"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
)

// TwinResult is a measured Barlow Twins training step: two forward passes
// of backbone and projector, the loss, the backward pass and LARS, as
// train.Trainer submits it.
type TwinResult struct {
	Arch, Projector string
	Batch, Size     int
	Steps           int     // steady-state steps timed
	Seconds         float64 // wall-clock time per step, pipelined as in training
	PairsPerSec     float64
	PeakBytes       uint64 // the pool's peak: parameters, optimiser state, activations, workspaces
	Adapter         string
	Params          int       // trainable parameters
	Activations     gpu.DType // F16: mixed precision
}

func (r TwinResult) String() string {
	return fmt.Sprintf("twin %s batch %d, %d px, projector %s, %v activations: %8.1f ms/step %8.1f pairs/s %7.0f MiB peak (%d steps, %s)",
		r.Arch, r.Batch, r.Size, r.Projector, r.Activations, 1e3*r.Seconds, r.PairsPerSec, float64(r.PeakBytes)/(1<<20), r.Steps, r.Adapter)
}

// twinRun is a model, loss, LARS and trainer on random grayscale views.
type twinRun struct {
	model *train.Model
	loss  *loss.BarlowTwins
	opt   optim.Optimizer
	tr    *train.Trainer
	a, b  []float32 // [batch, 1, size, size] each
}

// twinLR is a learning rate small enough that random views keep the
// weights finite over many steps.
const twinLR = 1e-3

func newTwinRun(d *gpu.Device, arch string, batch, size int, projector train.Projector, act gpu.DType) (*twinRun, error) {
	if batch < 2 || size < 1 {
		return nil, fmt.Errorf("bench: twin step of batch %d at %d px: need batch ≥ 2 and size ≥ 1", batch, size)
	}
	t := &twinRun{}
	var err error
	if t.model, err = train.NewModel(d, train.ModelConfig{Arch: arch, InChannels: 1, Projector: projector, Seed: 1}); err != nil {
		return nil, err
	}
	dim := t.model.Projector.Out
	if t.loss, err = loss.NewBarlowTwins(d, batch, dim, loss.DefaultOptions()); err != nil {
		t.release()
		return nil, err
	}
	if t.opt, err = optim.New(optim.LARS, d, t.model.Params(), optim.DefaultConfig()); err != nil {
		t.release()
		return nil, err
	}
	if t.tr, err = train.NewTrainer(d, t.model, t.loss, t.opt, train.TrainerOptions{Batch: batch, Channels: 1, Height: size, Width: size,
		Activations: act, LossScale: train.Config{Precision: train.Precision(act.String())}.GradScale()}); err != nil {
		t.release()
		return nil, err
	}
	// Random views rather than the data pipeline: the device's work does
	// not depend on the pixels, and the loader would compete for the CPU.
	rng := rand.New(rand.NewPCG(5, 6))
	t.a, t.b = make([]float32, batch*size*size), make([]float32, batch*size*size)
	for i := range t.a {
		t.a[i], t.b[i] = float32(rng.NormFloat64()), float32(rng.NormFloat64())
	}
	return t, nil
}

func (t *twinRun) step() error {
	_, err := t.tr.TwinStep(t.a, t.b, twinLR, twinLR)
	return err
}

func (t *twinRun) release() {
	if t.tr != nil {
		t.tr.Release()
	}
	if t.opt != nil {
		t.opt.Release()
	}
	if t.loss != nil {
		t.loss.Release()
	}
	if t.model != nil {
		t.model.Release()
	}
}

// MeasureTwinStep times steady-state training steps of the arch backbone
// with the given projector on batches of batch random size×size grayscale
// view pairs, for at least min after two warm-up steps (kernel compilation,
// pool growth). Steps are pipelined as in training: each submits while the
// one before may still run, and the last is waited for. PeakBytes is the
// pool's high-water mark over this measurement.
func MeasureTwinStep(d *gpu.Device, arch string, batch, size int, projector train.Projector, act gpu.DType, min time.Duration) (TwinResult, error) {
	// The peak is this step's alone: not what an earlier measurement
	// left in the pool.
	d.Sync()
	d.Trim()
	d.ResetPeak()
	t, err := newTwinRun(d, arch, batch, size, projector, act)
	if err != nil {
		return TwinResult{}, err
	}
	defer t.release()
	for range 2 {
		if err := t.step(); err != nil {
			return TwinResult{}, err
		}
	}
	if _, err := t.tr.Flush(); err != nil {
		return TwinResult{}, err
	}
	n := 0
	start := time.Now()
	for n == 0 || time.Since(start) < min {
		if err := t.step(); err != nil {
			return TwinResult{}, err
		}
		n++
	}
	if _, err := t.tr.Flush(); err != nil {
		return TwinResult{}, err
	}
	sec := time.Since(start).Seconds() / float64(n)
	params := 0
	for _, p := range t.model.Params() {
		params += p.Value.Len()
	}
	return TwinResult{Arch: arch, Projector: projector.String(), Activations: act, Batch: batch, Size: size, Steps: n, Seconds: sec,
		PairsPerSec: float64(batch) / sec, PeakBytes: d.MemStats().Peak, Adapter: d.Info.Name, Params: params}, nil
}

// TwinCases is the products and the other families' dispatches that one
// training step of the twin benchmark's network records, one case per class
// (gpu.Device.CollectGemms and CollectKernels): what tuning times for a run
// of that backbone, projector, batch and size.
func TwinCases(d *gpu.Device, arch string, batch, size int, projector train.Projector, act gpu.DType) ([]gpu.GemmCase, []gpu.KernelCase, error) {
	t, err := newTwinRun(d, arch, batch, size, projector, act)
	if err != nil {
		return nil, nil, err
	}
	defer t.release()
	d.CollectGemms(true)
	defer d.CollectGemms(false)
	d.CollectKernels(true)
	defer d.CollectKernels(false)
	if err := t.step(); err != nil {
		return nil, nil, err
	}
	if _, err := t.tr.Flush(); err != nil {
		return nil, nil, err
	}
	return d.CollectedGemms(), d.CollectedKernels(), nil
}

// KernelTime is the device time of one kernel family within a step, and
// the FLOPs and minimal traffic in bytes its kernels state (gpu.Timing;
// zero where they state none).
type KernelTime struct {
	Family       string
	Dispatches   int
	Nanos        float64
	Flops, Bytes float64
}

// TwinProfile is one training step's device time by kernel family, most
// expensive first.
type TwinProfile struct {
	Total    float64 // nanoseconds, all dispatches
	Families []KernelTime
}

func (p TwinProfile) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-40s %6s %10s %6s\n", "kernel family", "calls", "ms", "share")
	for _, f := range p.Families {
		fmt.Fprintf(&b, "%-40s %6d %10.2f %5.1f%%\n", f.Family, f.Dispatches, f.Nanos/1e6, 100*f.Nanos/p.Total)
	}
	fmt.Fprintf(&b, "%-40s %6s %10.2f", "total", "", p.Total/1e6)
	return b.String()
}

// Roofline places every family whose kernels state their work against the
// ceilings: its GFLOP/s and GB/s (minimal traffic) in the step, as
// fractions of the FMA and bandwidth ceilings (Ceilings.Roof).
func (p TwinProfile) Roofline(c Ceilings) string {
	var b strings.Builder
	for _, f := range p.Families {
		if f.Bytes > 0 {
			fmt.Fprintf(&b, "  roofline %-40s %s\n", f.Family, c.Roof(f.Flops, f.Bytes, f.Nanos/1e9))
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// Beside sets each family's device time in p beside its time in q (the
// same step with other kernel choices), in p's order, with q's time over
// p's.
func (p TwinProfile) Beside(q TwinProfile, pName, qName string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%-40s %10s %10s %8s\n", "kernel family", pName+" ms", qName+" ms", "×")
	for _, f := range p.Families {
		i := slices.IndexFunc(q.Families, func(g KernelTime) bool { return g.Family == f.Family })
		if i < 0 {
			fmt.Fprintf(&b, "%-40s %10.2f %10s %8s\n", f.Family, f.Nanos/1e6, "—", "")
			continue
		}
		g := q.Families[i]
		fmt.Fprintf(&b, "%-40s %10.2f %10.2f %8.2f\n", f.Family, f.Nanos/1e6, g.Nanos/1e6, g.Nanos/f.Nanos)
	}
	fmt.Fprintf(&b, "%-40s %10.2f %10.2f %8.2f", "total", p.Total/1e6, q.Total/1e6, q.Total/p.Total)
	return b.String()
}

// familyKeys are the specialisation keys that tell a kernel's passes apart
// (a GEMM's operand modes, BatchNorm's mode, a pooling op); tile sizes and
// the like are left out, so one family gathers every layer's dispatches.
var familyKeys = []string{"A", "B", "Mode", "Op", "Expr"}

// layouts are kernels that compute what another kernel does, laid out
// otherwise (tuning chooses between them): one family with it, so that a
// profile compares what a family costs whichever layout it took.
var layouts = map[string]string{"batchnorm_serial": "batchnorm"}

// Family is the family of a kernel named as gpu.Kernel.Name: the kernel
// and the keys of its specialisation that choose what it computes.
func Family(kernel string) string {
	name, spec, ok := strings.Cut(strings.TrimSuffix(kernel, "}"), "{")
	if l, found := layouts[name]; found {
		name = l
	}
	if !ok {
		return name
	}
	// Values may hold commas (elementwise expressions): a piece that does
	// not start a key continues the value before it.
	var kvs []string
	for _, piece := range strings.Split(spec, ",") {
		if k, _, ok := strings.Cut(piece, "="); ok && isKey(k) || len(kvs) == 0 {
			kvs = append(kvs, piece)
		} else {
			kvs[len(kvs)-1] += "," + piece
		}
	}
	var parts []string
	for _, kv := range kvs {
		k, _, _ := strings.Cut(kv, "=")
		for _, f := range familyKeys {
			if k == f {
				parts = append(parts, kv)
			}
		}
	}
	if len(parts) == 0 {
		return name
	}
	return name + "{" + strings.Join(parts, ",") + "}"
}

// isKey reports whether s is a specialisation key: a Go identifier.
func isKey(s string) bool {
	for i, r := range s {
		if !(r == '_' || unicode.IsLetter(r) || i > 0 && unicode.IsDigit(r)) {
			return false
		}
	}
	return s != ""
}

// ProfileTwinStep runs warm-up steps as MeasureTwinStep does, then records
// steps with device timestamps on every dispatch and returns the device
// time per kernel family, the median over steps of each family's total.
func ProfileTwinStep(d *gpu.Device, arch string, batch, size int, projector train.Projector, act gpu.DType, steps int) (TwinProfile, error) {
	if !d.HasTimestamps() {
		return TwinProfile{}, fmt.Errorf("bench: %s has no timestamp queries to profile with", d.Info.Name)
	}
	t, err := newTwinRun(d, arch, batch, size, projector, act)
	if err != nil {
		return TwinProfile{}, err
	}
	defer t.release()
	if err := t.step(); err != nil {
		return TwinProfile{}, err
	}
	per := map[string][]float64{}
	calls := map[string]int{}
	flops, bytes := map[string]float64{}, map[string]float64{}
	for s := range max(steps, 1) {
		ts, err := t.tr.Profile(t.a, t.b, twinLR, twinLR)
		if err != nil {
			return TwinProfile{}, err
		}
		sums := map[string]float64{}
		for _, x := range ts {
			f := Family(x.Kernel)
			sums[f] += x.Nanos
			if s == 0 {
				calls[f]++
				flops[f] += x.Flops
				bytes[f] += x.Bytes
			}
		}
		for f := range calls {
			per[f] = append(per[f], sums[f])
		}
	}
	var p TwinProfile
	for f, v := range per {
		sort.Float64s(v)
		k := KernelTime{Family: f, Dispatches: calls[f], Nanos: v[len(v)/2], Flops: flops[f], Bytes: bytes[f]}
		p.Families = append(p.Families, k)
		p.Total += k.Nanos
	}
	sort.Slice(p.Families, func(i, j int) bool { return p.Families[i].Nanos > p.Families[j].Nanos })
	return p, nil
}
