package optim

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/enum"
	"github.com/bt-org/bt/layers"
	"github.com/bt-org/bt/shaders"
)

// Optimizer updates parameters in place from their gradients. Weights
// (matrices and convolution kernels) and vectors (biases and BatchNorm's γ
// and β, every 1-D parameter) take separate learning rates, as the official
// code's two parameter groups do.
type Optimizer interface {
	// Step records one update of every parameter. The step count advances
	// when the step is recorded, so a recording that is discarded instead
	// of submitted leaves it one ahead.
	Step(r *gpu.Recorder, lrWeights, lrVectors float32) error
	// State downloads the optimiser's state for a checkpoint; it waits for
	// all submitted work.
	State() (*State, error)
	// SetState restores a state that State returned, for the same
	// optimiser over parameters of the same names and sizes.
	SetState(s *State) error
	// Release frees the optimiser's state on the device; the parameters
	// are the caller's.
	Release()
}

// State is an optimiser's state for a checkpoint. Tensors holds
// one entry per parameter and state tensor, named "PARAM/KIND", each as
// long as its parameter: KIND is momentum for LARS and SGD (the official
// LARS's mu, PyTorch SGD's momentum_buffer), exp_avg and exp_avg_sq for
// AdamW (PyTorch's names).
type State struct {
	Kind    Kind
	Step    int // steps taken
	Tensors map[string][]float32
}

// Names lists the state's tensor names in order.
func (s *State) Names() []string {
	names := make([]string, 0, len(s.Tensors))
	for n := range s.Tensors {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// LARSConfig holds LARS's settings.
type LARSConfig struct {
	WeightDecay float64 // added to weights' gradients before the trust ratio
	Momentum    float64
	Eta         float64 // trust coefficient η
}

// DefaultLARSConfig is the paper's LARS: weight decay 1.5e-6 (the official
// main.py uses 1e-6), momentum 0.9, η 0.001.
func DefaultLARSConfig() LARSConfig {
	return LARSConfig{WeightDecay: 1.5e-6, Momentum: 0.9, Eta: 0.001}
}

// SGDConfig holds SGD's settings.
type SGDConfig struct {
	WeightDecay float64 // added to the gradient (L2), as PyTorch's SGD does
	Momentum    float64
	// ExcludeVectors exempts 1-D parameters from weight decay.
	ExcludeVectors bool
}

// DefaultSGDConfig is momentum 0.9 and the official weight decay 1e-6 on
// every parameter, PyTorch's grouping.
func DefaultSGDConfig() SGDConfig {
	return SGDConfig{WeightDecay: 1e-6, Momentum: 0.9}
}

// AdamWConfig holds AdamW's settings.
type AdamWConfig struct {
	WeightDecay float64 // decoupled: w −= lr·wd·w
	Beta1       float64
	Beta2       float64
	Eps         float64
	// ExcludeVectors exempts 1-D parameters from weight decay.
	ExcludeVectors bool
}

// DefaultAdamWConfig is PyTorch's AdamW: β 0.9 and 0.999, eps 1e-8, weight
// decay 0.01 on every parameter.
func DefaultAdamWConfig() AdamWConfig {
	return AdamWConfig{WeightDecay: 0.01, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
}

// Config gathers every optimiser's settings for New, which
// uses the one its name picks.
type Config struct {
	LARS  LARSConfig
	SGD   SGDConfig
	AdamW AdamWConfig
}

// DefaultConfig holds every optimiser's defaults.
func DefaultConfig() Config {
	return Config{LARS: DefaultLARSConfig(), SGD: DefaultSGDConfig(), AdamW: DefaultAdamWConfig()}
}

// Kind names an optimiser. Its text is the name; UnmarshalText refuses
// any other, but takes "", the zero value of a file that records no run
// settings, which Check (and so a run's validation) refuses.
type Kind string

// The optimisers.
const (
	LARS  Kind = "lars"
	SGD   Kind = "sgd"
	AdamW Kind = "adamw"
)

// Kinds are the optimisers New builds.
func Kinds() []Kind { return []Kind{LARS, SGD, AdamW} }

// Check is nil for an optimiser's name.
func (k Kind) Check() error { return enum.Check("optim: optimiser", k, Kinds()) }

func (k Kind) String() string { return string(k) }

// MarshalText is k's name.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k), nil }

// UnmarshalText takes an optimiser's name, or "".
func (k *Kind) UnmarshalText(text []byte) error {
	v, err := enum.Parse("optim: optimiser", text, Kinds())
	if err != nil && v != "" {
		return err
	}
	*k = v
	return nil
}

// New returns the optimiser of the kind given over params, configured by
// the matching field of c.
func New(kind Kind, d *gpu.Device, params []*layers.Param, c Config) (Optimizer, error) {
	switch kind {
	case LARS:
		return NewLARS(d, params, c.LARS)
	case SGD:
		return NewSGD(d, params, c.SGD)
	case AdamW:
		return NewAdamW(d, params, c.AdamW)
	}
	return nil, fmt.Errorf("optim: unknown optimizer %q; choose one of %s", kind, enum.Join(Kinds(), ", "))
}

// NewLARS returns the official Barlow Twins LARS over params. Weights get
// weight decay and the trust ratio; vectors get neither.
func NewLARS(d *gpu.Device, params []*layers.Param, c LARSConfig) (Optimizer, error) {
	if err := checkHyper("LARS", c.WeightDecay, c.Momentum); err != nil {
		return nil, err
	}
	if !(c.Eta > 0) || math.IsInf(c.Eta, 0) {
		return nil, fmt.Errorf("optim: LARS trust coefficient η = %g must be positive and finite", c.Eta)
	}
	o := &optimizer{kind: "lars", rule: shaders.Momentum, beta1: c.Momentum, eta: c.Eta}
	return o.init(d, params, func(p *layers.Param) (float64, bool) {
		if p.IsVector() {
			return 0, false
		}
		return c.WeightDecay, true
	})
}

// NewSGD returns PyTorch's SGD with momentum (no dampening, no Nesterov)
// over params.
func NewSGD(d *gpu.Device, params []*layers.Param, c SGDConfig) (Optimizer, error) {
	if err := checkHyper("SGD", c.WeightDecay, c.Momentum); err != nil {
		return nil, err
	}
	o := &optimizer{kind: "sgd", rule: shaders.Momentum, beta1: c.Momentum}
	return o.init(d, params, func(p *layers.Param) (float64, bool) {
		if c.ExcludeVectors && p.IsVector() {
			return 0, false
		}
		return c.WeightDecay, false
	})
}

// NewAdamW returns PyTorch's AdamW (bias-corrected, without AMSGrad) over
// params.
func NewAdamW(d *gpu.Device, params []*layers.Param, c AdamWConfig) (Optimizer, error) {
	if err := checkHyper("AdamW", c.WeightDecay, c.Beta1); err != nil {
		return nil, err
	}
	if !(c.Beta2 >= 0 && c.Beta2 < 1) {
		return nil, fmt.Errorf("optim: AdamW β2 = %g must be in [0, 1)", c.Beta2)
	}
	if !(c.Eps > 0) || math.IsInf(c.Eps, 0) {
		return nil, fmt.Errorf("optim: AdamW eps = %g must be positive and finite", c.Eps)
	}
	o := &optimizer{kind: "adamw", rule: shaders.AdamW, beta1: c.Beta1, beta2: c.Beta2, eps: c.Eps}
	return o.init(d, params, func(p *layers.Param) (float64, bool) {
		if c.ExcludeVectors && p.IsVector() {
			return 0, false
		}
		return c.WeightDecay, false
	})
}

func checkHyper(name string, wd, momentum float64) error {
	if !(wd >= 0) || math.IsInf(wd, 0) {
		return fmt.Errorf("optim: %s weight decay %g must be ≥ 0 and finite", name, wd)
	}
	if !(momentum >= 0 && momentum < 1) {
		return fmt.Errorf("optim: %s momentum %g must be in [0, 1)", name, momentum)
	}
	return nil
}

// optimWG is the workgroup size of both optimiser kernels.
const optimWG = 256

// optimElems is the number of elements each thread of optim updates. GPUs
// take 4, which keeps many workgroups in flight for mid-sized tensors;
// lavapipe runs each workgroup's trust-ratio reduction and its barriers on
// a CPU core and measured three times faster with 16 (a 512×512×3×3
// weight: 20 ms against 60 ms).
func optimElems(d *gpu.Device) int {
	if d.IsCPU() {
		return 16
	}
	return 4
}

// normGroups is the number of workgroups optim_norms uses for n elements:
// at least 8 elements per thread, and at most optimWG, so that optim's
// workgroups each read one partial pair per thread at most.
func normGroups(n int) int {
	return max(1, min(optimWG, (n+8*optimWG-1)/(8*optimWG)))
}

// grid spreads groups workgroups over x, and over y where x holds no more
// than maxX; maxY is the device's limit.
func grid(groups, maxX, maxY int) ([3]int, error) {
	x := min(groups, maxX, maxY)
	y := (groups + x - 1) / x
	if y > maxY {
		return [3]int{}, fmt.Errorf("optim: %d workgroups exceed %d×%d", groups, x, maxY)
	}
	return [3]int{x, y, 1}, nil
}

// optimizer is every optimiser: the rule picks the kernel's update, and per
// parameter the weight decay and whether LARS's trust ratio applies.
type optimizer struct {
	d      *gpu.Device
	kind   Kind
	rule   shaders.OptimRule
	params []*layers.Param
	wd     []float64
	trust  []bool
	slots  []string        // state tensor kinds, the same for every parameter
	state  [][]*gpu.Tensor // [param][slot], each the parameter's length
	part   *gpu.Tensor     // [2·Σ normGroups] partial sums of squares, for trusted parameters
	off    []int           // each parameter's offset in part
	steps  int
	elems  int // optim's E
	maxX   int // the most workgroups along x before splitting over y; tests lower it

	// Hyperparameters, in float64 until they go to the device, so that
	// 1−β is formed before rounding.
	beta1, beta2, eps, eta float64
}

// init returns o set up by alloc, or nil and alloc's error.
func (o *optimizer) init(d *gpu.Device, params []*layers.Param, group func(*layers.Param) (wd float64, trust bool)) (Optimizer, error) {
	if err := o.alloc(d, params, group); err != nil {
		return nil, err
	}
	return o, nil
}

// alloc validates params and allocates the zeroed state; group gives each
// parameter's weight decay and whether the trust ratio applies.
func (o *optimizer) alloc(d *gpu.Device, params []*layers.Param, group func(*layers.Param) (float64, bool)) error {
	if len(params) == 0 {
		return fmt.Errorf("optim: %s needs at least one parameter", o.kind)
	}
	seen := map[string]bool{}
	for i, p := range params {
		if p == nil || p.Value == nil || p.Grad == nil {
			return fmt.Errorf("optim: %s: parameter %d is nil or lacks a value or gradient", o.kind, i)
		}
		if p.Name == "" || seen[p.Name] {
			return fmt.Errorf("optim: %s: parameter %d is named %q; names must be unique and non-empty, they key the checkpointed state", o.kind, i, p.Name)
		}
		seen[p.Name] = true
		if p.Value.Len() != p.Grad.Len() {
			return fmt.Errorf("optim: %s: parameter %s is %v but its gradient is %v", o.kind, p.Name, p.Value.Shape, p.Grad.Shape)
		}
	}
	o.d, o.params = d, slices.Clone(params)
	o.elems, o.maxX = optimElems(d), int(d.Limits.MaxComputeWorkgroupsPerDimension)
	o.slots = []string{"momentum"}
	if o.rule == shaders.AdamW {
		o.slots = []string{"exp_avg", "exp_avg_sq"}
	}
	total := 0
	for _, p := range params {
		wd, trust := group(p)
		o.wd = append(o.wd, wd)
		o.trust = append(o.trust, trust)
		o.off = append(o.off, total)
		if trust {
			total += 2 * normGroups(p.Value.Len())
		}
	}
	var err error
	fail := func(e error) error {
		o.Release()
		return fmt.Errorf("optim: %s state: %w", o.kind, e)
	}
	if total > 0 {
		if o.part, err = d.NewTensor(total); err != nil {
			return fail(err)
		}
	}
	for _, p := range params {
		ts := make([]*gpu.Tensor, len(o.slots))
		o.state = append(o.state, ts)
		for j := range ts {
			if ts[j], err = d.FromSlice(make([]float32, p.Value.Len()), p.Value.Shape...); err != nil {
				return fail(err)
			}
		}
	}
	return nil
}

// Step records the update of every parameter: for a trusted parameter
// (LARS's weights) optim_norms then optim, otherwise optim alone.
func (o *optimizer) Step(r *gpu.Recorder, lrWeights, lrVectors float32) error {
	if o.state == nil {
		return fmt.Errorf("optim: %s used after Release", o.kind)
	}
	for _, lr := range []float32{lrWeights, lrVectors} {
		if !(lr >= 0) || math.IsInf(float64(lr), 0) {
			return fmt.Errorf("optim: %s learning rates %g (weights), %g (vectors) must be ≥ 0 and finite", o.kind, lrWeights, lrVectors)
		}
	}
	norms, err := o.d.Kernel("optim_norms", shaders.OptimNorms{Subgroups: o.d.Subgroups, Threads: shaders.Threads{WG: optimWG}})
	if err != nil {
		return err
	}
	o.steps++
	// AdamW's bias corrections in float64, as PyTorch computes them.
	t := float64(o.steps)
	bc1 := 1 - math.Pow(o.beta1, t)
	bc2 := math.Sqrt(1 - math.Pow(o.beta2, t))
	maxWG := int(o.d.Limits.MaxComputeWorkgroupsPerDimension)
	for i, p := range o.params {
		lr := lrWeights
		if p.IsVector() {
			lr = lrVectors
		}
		n := p.Value.Len()
		ng := normGroups(n)
		if o.trust[i] {
			if err := r.Dispatch(norms, [3]int{ng, 1, 1}, gpu.Params{}.U(n).U(ng).U(o.off[i]).F(float32(o.wd[i])), o.part, p.Value, p.Grad); err != nil {
				return fmt.Errorf("optim: %s norms of %s: %w", o.kind, p.Name, err)
			}
		}
		k, err := o.d.Kernel("optim", shaders.Optim{Rule: o.rule, Trust: o.trust[i], E: o.elems, Subgroups: o.d.Subgroups,
			Threads: shaders.Threads{WG: optimWG}})
		if err != nil {
			return err
		}
		g, err := grid((n+optimWG*o.elems-1)/(optimWG*o.elems), o.maxX, maxWG)
		if err != nil {
			return fmt.Errorf("optim: %s step of %s %v: %w", o.kind, p.Name, p.Value.Shape, err)
		}
		f := func(x float64) float32 { return float32(x) }
		params := gpu.Params{}.U(n).U(ng).U(o.off[i]).F(lr).F(f(o.wd[i])).F(f(o.beta1)).F(f(1 - o.beta1)).
			F(f(o.beta2)).F(f(1 - o.beta2)).F(f(o.eps)).F(f(o.eta)).
			F(f(1 - float64(lr)*o.wd[i])).F(f(float64(lr) / bc1)).F(f(bc2))
		bufs := append([]*gpu.Tensor{p.Value}, o.state[i]...)
		bufs = append(bufs, p.Grad)
		if o.trust[i] {
			bufs = append(bufs, o.part)
		}
		if err := r.Dispatch(k, g, params, bufs...); err != nil {
			return fmt.Errorf("optim: %s step of %s: %w", o.kind, p.Name, err)
		}
	}
	return nil
}

func (o *optimizer) State() (*State, error) {
	if o.state == nil {
		return nil, fmt.Errorf("optim: %s used after Release", o.kind)
	}
	s := &State{Kind: o.kind, Step: o.steps, Tensors: map[string][]float32{}}
	for i, p := range o.params {
		for j, slot := range o.slots {
			v, err := o.state[i][j].Download()
			if err != nil {
				return nil, fmt.Errorf("optim: %s state %s/%s: %w", o.kind, p.Name, slot, err)
			}
			s.Tensors[p.Name+"/"+slot] = v
		}
	}
	return s, nil
}

func (o *optimizer) SetState(s *State) error {
	if o.state == nil {
		return fmt.Errorf("optim: %s used after Release", o.kind)
	}
	if s == nil {
		return errors.New("optim: SetState of a nil state")
	}
	if s.Kind != o.kind {
		return fmt.Errorf("optim: a %q optimizer state cannot restore a %q optimizer", s.Kind, o.kind)
	}
	if s.Step < 0 {
		return fmt.Errorf("optim: %s state has step count %d", o.kind, s.Step)
	}
	want := len(o.params) * len(o.slots)
	if len(s.Tensors) != want {
		return fmt.Errorf("optim: %s state holds %d tensors, the optimizer %d (%d parameters × %v): %v",
			o.kind, len(s.Tensors), want, len(o.params), o.slots, s.Names())
	}
	// Check everything before uploading anything, so that a bad state
	// leaves the optimiser as it was.
	for _, p := range o.params {
		for _, slot := range o.slots {
			name := p.Name + "/" + slot
			v, ok := s.Tensors[name]
			if !ok {
				return fmt.Errorf("optim: %s state lacks %s", o.kind, name)
			}
			if len(v) != p.Value.Len() {
				return fmt.Errorf("optim: %s state %s has %d values; parameter %s %v has %d", o.kind, name, len(v), p.Name, p.Value.Shape, p.Value.Len())
			}
		}
	}
	for i, p := range o.params {
		for j, slot := range o.slots {
			if err := o.state[i][j].Upload(s.Tensors[p.Name+"/"+slot]); err != nil {
				return fmt.Errorf("optim: %s state %s/%s: %w", o.kind, p.Name, slot, err)
			}
		}
	}
	o.steps = s.Step
	return nil
}

func (o *optimizer) Release() {
	for _, ts := range o.state {
		for _, t := range ts {
			t.Release()
		}
	}
	o.state = nil
	o.part.Release()
	o.part = nil
}
