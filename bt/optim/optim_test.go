package optim

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/fixture"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
	"github.com/bt-org/bt/layers"
)

// refOpt is an optimiser's float64 reference over parameters keyed by name,
// with the same per-parameter grouping as the GPU's.
type refOpt struct {
	kind  Kind
	cfg   Config
	p     map[string][]float64
	state map[string][]float64 // "PARAM/KIND", as State
	steps int
}

func (o *refOpt) step(name string, vector bool, g []float64, lrW, lrV float64) {
	lr := lrW
	if vector {
		lr = lrV
	}
	p := o.p[name]
	switch o.kind {
	case "lars":
		c := o.cfg.LARS
		ref.LARS(p, o.state[name+"/momentum"], g, lr, c.WeightDecay, c.Momentum, c.Eta, vector)
	case "sgd":
		c := o.cfg.SGD
		wd := c.WeightDecay
		if vector && c.ExcludeVectors {
			wd = 0
		}
		ref.SGD(p, o.state[name+"/momentum"], g, lr, wd, c.Momentum)
	case "adamw":
		c := o.cfg.AdamW
		wd := c.WeightDecay
		if vector && c.ExcludeVectors {
			wd = 0
		}
		ref.AdamW(p, o.state[name+"/exp_avg"], o.state[name+"/exp_avg_sq"], g, lr, wd, c.Beta1, c.Beta2, c.Eps, o.steps)
	}
}

func slotsOf(kind Kind) []string {
	if kind == "adamw" {
		return []string{"exp_avg", "exp_avg_sq"}
	}
	return []string{"momentum"}
}

func newTestParam(t *testing.T, d *gpu.Device, name string, v []float64, shape []int) *layers.Param {
	t.Helper()
	val, err := d.FromSlice(kcheck.To32(v), shape...)
	if err != nil {
		t.Fatal(err)
	}
	g, err := d.NewTensor(shape...)
	if err != nil {
		t.Fatal(err)
	}
	return &layers.Param{Name: name, Value: val, Grad: g}
}

// optimParams are the parameters of the random tests: lengths that are
// multiples of no workgroup, vectors and weights mixed, an all-zero weight
// (‖w‖ = 0, so q = 1), weights and a vector whose gradient is always zero
// (‖d‖ = 0 without weight decay), and one large enough that optim_norms
// uses its maximum number of workgroups.
var optimParams = []struct {
	name   string
	shape  []int
	zero   bool // value all zero
	noGrad bool // gradient always zero
}{
	{"v1", []int{1}, false, false},
	{"m1", []int{1, 1}, false, false},
	{"m3", []int{3, 1}, false, false},
	{"v17", []int{17}, false, false},
	{"m65", []int{5, 13}, false, false},
	{"v65", []int{65}, false, false},
	{"conv129", []int{3, 43, 1, 1}, false, false},
	{"m4099", []int{1, 4099}, false, false},
	{"zero", []int{17, 3}, true, false},
	{"nograd", []int{129}, false, true},
	{"nogradm", []int{3, 43}, false, true},
	{"big", []int{1031, 521}, false, false},
}

// TestOptimizersRandom checks every rule against its float64 reference over
// several steps; LARS's norms are summed in subgroups and in workgroup
// memory.
func TestOptimizersRandom(t *testing.T) {
	gputest.SubgroupModes(t, func(t *testing.T, d *gpu.Device) {
		lars := DefaultConfig()
		// η and the rates are large enough for every step to move the weights
		// by several percent, far above float32 rounding of the weights. They
		// are also chosen not to conspire: a 1-element weight's LARS step is
		// η·|w|·sign(d), and with lr·η = 1 − momentum two steps of opposite
		// sign cancel the momentum exactly, leaving only rounding to compare.
		lars.LARS = LARSConfig{WeightDecay: 0.05, Momentum: 0.9, Eta: 0.13}
		larsNoWD := lars
		larsNoWD.LARS.WeightDecay = 0
		sgd := DefaultConfig()
		sgd.SGD = SGDConfig{WeightDecay: 0.1, Momentum: 0.9}
		sgdEx := sgd
		sgdEx.SGD.ExcludeVectors = true
		adam := DefaultConfig()
		adam.AdamW = AdamWConfig{WeightDecay: 0.1, Beta1: 0.9, Beta2: 0.999, Eps: 1e-8}
		adamEx := adam
		adamEx.AdamW.ExcludeVectors = true
		cases := []struct {
			name     string
			kind     Kind
			cfg      Config
			lrW, lrV []float64 // per step
			resume   bool      // start from a random state at step 5 through SetState
			maxX     int       // lowers the workgroups along x, to split grids over y
			elems    int       // overrides optim's elements per thread (GPUs' 4 where lavapipe has 16)
		}{
			{"lars", "lars", lars, []float64{1.1, 0.7, 1.7}, []float64{0.1, 0.05, 0.2}, false, 0, 0},
			{"lars resumed", "lars", lars, []float64{1.1, 0.7, 1.7}, []float64{0.1, 0.05, 0.2}, true, 0, 0},
			{"lars without weight decay", "lars", larsNoWD, []float64{1.1, 0.7, 1.7}, []float64{0.1, 0.05, 0.2}, true, 0, 0},
			{"lars split grid", "lars", lars, []float64{1.1, 0.7, 1.7}, []float64{0.1, 0.05, 0.2}, true, 3, 4},
			{"sgd", "sgd", sgd, []float64{0.1, 0.05, 0.2}, []float64{0.05, 0.1, 0.02}, false, 0, 4},
			{"sgd resumed, vectors undecayed, split grid", "sgd", sgdEx, []float64{0.1, 0.05, 0.2}, []float64{0.05, 0.1, 0.02}, true, 5, 0},
			{"adamw", "adamw", adam, []float64{0.01, 0.02, 0.03}, []float64{0.03, 0.02, 0.01}, false, 0, 0},
			{"adamw resumed, vectors undecayed", "adamw", adamEx, []float64{0.01, 0.02, 0.03}, []float64{0.03, 0.02, 0.01}, true, 0, 0},
			{"adamw split grid", "adamw", adam, []float64{0.01, 0.02, 0.03}, []float64{0.03, 0.02, 0.01}, true, 2, 4},
		}
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				rng := gputest.Rand(t)
				ro := &refOpt{kind: c.kind, cfg: c.cfg, p: map[string][]float64{}, state: map[string][]float64{}}
				init := map[string][]float64{}
				var params []*layers.Param
				for _, sp := range optimParams {
					n := kcheck.Numel(sp.shape)
					v := kcheck.To64(kcheck.To32(kcheck.Normal(rng, n)))
					if sp.zero {
						v = make([]float64, n)
					}
					init[sp.name] = v
					ro.p[sp.name] = slices.Clone(v)
					p := newTestParam(t, d, sp.name, v, sp.shape)
					defer p.Release()
					params = append(params, p)
					for _, s := range slotsOf(c.kind) {
						ro.state[sp.name+"/"+s] = make([]float64, n)
					}
				}
				o, err := New(c.kind, d, params, c.cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer o.Release()
				opt := o.(*optimizer)
				if c.maxX > 0 {
					opt.maxX = c.maxX
				}
				if c.elems > 0 {
					opt.elems = c.elems
				}
				if c.resume {
					st := &State{Kind: c.kind, Step: 5, Tensors: map[string][]float32{}}
					// Sorted, so that BT_SEED repeats the draw.
					for _, name := range slices.Sorted(maps.Keys(ro.state)) {
						v := kcheck.Normal(rng, len(ro.state[name]))
						if strings.HasSuffix(name, "/exp_avg_sq") {
							for i := range v {
								v[i] *= v[i]
							}
						}
						st.Tensors[name] = kcheck.To32(v)
						ro.state[name] = kcheck.To64(st.Tensors[name])
					}
					ro.steps = st.Step
					if err := o.SetState(st); err != nil {
						t.Fatal(err)
					}
					back, err := o.State()
					if err != nil {
						t.Fatal(err)
					}
					if back.Kind != st.Kind || back.Step != st.Step || len(back.Tensors) != len(st.Tensors) {
						t.Fatalf("State after SetState: kind %q step %d with %d tensors, want %q %d %d", back.Kind, back.Step, len(back.Tensors), st.Kind, st.Step, len(st.Tensors))
					}
					for name, v := range st.Tensors {
						if !slices.Equal(back.Tensors[name], v) {
							t.Fatalf("State after SetState: %s differs from what was set", name)
						}
					}
				}
				for s := range c.lrW {
					ro.steps++
					for i, sp := range optimParams {
						g := make([]float64, kcheck.Numel(sp.shape))
						if !sp.noGrad {
							g = kcheck.To64(kcheck.To32(kcheck.Normal(rng, len(g))))
						}
						if err := params[i].Grad.Upload(kcheck.To32(g)); err != nil {
							t.Fatal(err)
						}
						ro.step(sp.name, params[i].IsVector(), g, float64(float32(c.lrW[s])), float64(float32(c.lrV[s])))
					}
					err := d.Run(func(r *gpu.Recorder) error {
						// Unwritten partial sums would make the trust ratio NaN.
						if opt.part != nil {
							if err := gpu.Fill(r, opt.part, float32(math.NaN())); err != nil {
								return err
							}
						}
						return o.Step(r, float32(c.lrW[s]), float32(c.lrV[s]))
					})
					if err != nil {
						t.Fatal(err)
					}
					checkOptim(t, fmt.Sprintf("step %d", s+1), o, params, init, ro)
					resync(t, o, params, ro)
				}
			})
		}
	})
}

// resync starts the reference's next step from the device's float32
// parameters and state, as the device's next step starts, so that each
// step is checked on its own: over several steps the float64 trajectory
// drifts from the float32 one, by more than one step's bound where a
// one-element parameter passes near zero.
func resync(t *testing.T, o Optimizer, params []*layers.Param, ro *refOpt) {
	t.Helper()
	for _, p := range params {
		v, err := p.Value.Download()
		if err != nil {
			t.Fatal(err)
		}
		ro.p[p.Name] = kcheck.To64(v)
	}
	st, err := o.State()
	if err != nil {
		t.Fatal(err)
	}
	for name, v := range st.Tensors {
		ro.state[name] = kcheck.To64(v)
	}
}

// checkOptim compares every parameter, the change of all of them since
// init and every state tensor with the reference. The change is compared
// on its own because it is small beside the parameters: an element left
// unwritten hides in a parameter's relative error but not in the change's.
// It is compared over all parameters together because a single element's
// change can be as small as the float32 rounding of the element itself.
func checkOptim(t *testing.T, at string, o Optimizer, params []*layers.Param, init map[string][]float64, ro *refOpt) {
	t.Helper()
	if err := compareParams(params, init, ro.p); err != nil {
		t.Errorf("%s: %v", at, err)
	}
	st, err := o.State()
	if err != nil {
		t.Fatal(err)
	}
	if st.Step != ro.steps {
		t.Errorf("%s: step count %d, want %d", at, st.Step, ro.steps)
	}
	if len(st.Tensors) != len(ro.state) {
		t.Errorf("%s: %d state tensors %v, want %d", at, len(st.Tensors), st.Names(), len(ro.state))
	}
	for name, want := range ro.state {
		got, ok := st.Tensors[name]
		if !ok {
			t.Errorf("%s: state lacks %s", at, name)
			continue
		}
		if err := ref.Compare(kcheck.To64(got), want, kcheck.Reduction); err != nil {
			t.Errorf("%s: state %s: %v", at, name, err)
		}
	}
}

// compareParams compares every parameter with want and the change of all
// of them since init with want's.
func compareParams(params []*layers.Param, init, want map[string][]float64) error {
	var dg, dw []float64
	var errs []string
	for _, p := range params {
		got, err := p.Value.Download()
		if err != nil {
			return err
		}
		g64, w := kcheck.To64(got), want[p.Name]
		if err := ref.Compare(g64, w, kcheck.Reduction); err != nil {
			errs = append(errs, fmt.Sprintf("parameter %s %v: %v", p.Name, p.Value.Shape, err))
		}
		for i := range w {
			dg = append(dg, g64[i]-init[p.Name][i])
			dw = append(dw, w[i]-init[p.Name][i])
		}
	}
	if err := ref.Compare(dg, dw, kcheck.Reduction); err != nil {
		errs = append(errs, fmt.Sprintf("change of the parameters: %v", err))
	}
	if errs != nil {
		return errors.New(strings.Join(errs, "; "))
	}
	return nil
}

// TestOptimizerFixtures replays PyTorch's three steps (tools/fixtures/optim.py)
// on the GPU and in the float64 reference, and compares both with PyTorch.
func TestOptimizerFixtures(t *testing.T) {
	d := gputest.Device(t)
	for _, kind := range Kinds() {
		t.Run(kind.String(), func(t *testing.T) {
			f, err := fixture.Load("testdata/optim_" + kind.String() + ".json")
			if err != nil {
				t.Fatal(err)
			}
			cfg := DefaultConfig()
			num := func(key string) float64 {
				v, err := f.Float(key)
				if err != nil {
					t.Fatal(err)
				}
				return v
			}
			flag := func(key string) bool {
				v, ok := f.Meta[key].(bool)
				if !ok {
					t.Fatalf("fixture meta %q missing or not a boolean", key)
				}
				return v
			}
			switch kind {
			case "lars":
				cfg.LARS = LARSConfig{WeightDecay: num("weight_decay"), Momentum: num("momentum"), Eta: num("eta")}
			case "sgd":
				cfg.SGD = SGDConfig{WeightDecay: num("weight_decay"), Momentum: num("momentum"), ExcludeVectors: flag("exclude_vectors")}
			case "adamw":
				cfg.AdamW = AdamWConfig{WeightDecay: num("weight_decay"), Beta1: num("beta1"), Beta2: num("beta2"), Eps: num("eps"), ExcludeVectors: flag("exclude_vectors")}
			}
			steps, err := f.Int("steps")
			if err != nil {
				t.Fatal(err)
			}
			get := func(name string) fixture.Tensor {
				x, err := f.Get(name)
				if err != nil {
					t.Fatal(err)
				}
				return x
			}
			names, ok := f.Meta["params"].([]any)
			if !ok || len(names) == 0 {
				t.Fatal("fixture meta lacks the parameter names")
			}
			lrW, lrV := get("lr_weights").Data, get("lr_vectors").Data
			// The float64 reference runs on the fixture's own values; the GPU
			// and its own reference (for the changes) on their float32 roundings.
			exact := &refOpt{kind: kind, cfg: cfg, p: map[string][]float64{}, state: map[string][]float64{}}
			ro := &refOpt{kind: kind, cfg: cfg, p: map[string][]float64{}, state: map[string][]float64{}}
			init := map[string][]float64{}
			var params []*layers.Param
			for _, n := range names {
				name := n.(string)
				x := get(name + ".init")
				init[name] = kcheck.To64(kcheck.To32(x.Data))
				exact.p[name] = slices.Clone(x.Data)
				ro.p[name] = slices.Clone(init[name])
				p := newTestParam(t, d, name, x.Data, x.Shape)
				defer p.Release()
				params = append(params, p)
				for _, s := range slotsOf(kind) {
					exact.state[name+"/"+s] = make([]float64, len(x.Data))
					ro.state[name+"/"+s] = make([]float64, len(x.Data))
				}
			}
			o, err := New(kind, d, params, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer o.Release()
			for s := range steps {
				exact.steps++
				ro.steps++
				for _, p := range params {
					g := get(fmt.Sprintf("%s.grad%d", p.Name, s)).Data
					if err := p.Grad.Upload(kcheck.To32(g)); err != nil {
						t.Fatal(err)
					}
					exact.step(p.Name, p.IsVector(), g, lrW[s], lrV[s])
					ro.step(p.Name, p.IsVector(), kcheck.To64(kcheck.To32(g)), float64(float32(lrW[s])), float64(float32(lrV[s])))
				}
				if err := d.Run(func(r *gpu.Recorder) error { return o.Step(r, float32(lrW[s]), float32(lrV[s])) }); err != nil {
					t.Fatal(err)
				}
			}
			// The reference against PyTorch, in float64.
			for _, p := range params {
				if err := ref.Compare(exact.p[p.Name], get(p.Name+".final").Data, 1e-12); err != nil {
					t.Errorf("float64 reference, parameter %s: %v", p.Name, err)
				}
				for _, s := range slotsOf(kind) {
					if err := ref.Compare(exact.state[p.Name+"/"+s], get(p.Name+"/"+s).Data, 1e-12); err != nil {
						t.Errorf("float64 reference, state %s/%s: %v", p.Name, s, err)
					}
				}
			}
			// The GPU against PyTorch: parameters, their changes and the state.
			st, err := o.State()
			if err != nil {
				t.Fatal(err)
			}
			if st.Kind != kind || st.Step != steps {
				t.Errorf("state kind %q step %d, want %q %d", st.Kind, st.Step, kind, steps)
			}
			final := map[string][]float64{}
			for _, p := range params {
				final[p.Name] = get(p.Name + ".final").Data
			}
			if err := compareParams(params, init, final); err != nil {
				t.Error(err)
			}
			for _, p := range params {
				for _, s := range slotsOf(kind) {
					if err := ref.Compare(kcheck.To64(st.Tensors[p.Name+"/"+s]), get(p.Name+"/"+s).Data, kcheck.Reduction); err != nil {
						t.Errorf("state %s/%s: %v", p.Name, s, err)
					}
				}
			}
		})
	}
}

func TestOptimizerErrors(t *testing.T) {
	d := gputest.Device(t)
	mk := func(name string, shape, grad []int) *layers.Param {
		p := newTestParam(t, d, name, make([]float64, kcheck.Numel(shape)), shape)
		if !slices.Equal(shape, grad) {
			p.Grad.Release()
			g, err := d.NewTensor(grad...)
			if err != nil {
				t.Fatal(err)
			}
			p.Grad = g
		}
		t.Cleanup(p.Release)
		return p
	}
	w, b := mk("w", []int{3, 4}, []int{3, 4}), mk("b", []int{4}, []int{4})
	bad := mk("bad", []int{3, 4}, []int{4})
	dup := mk("w", []int{2}, []int{2})
	def := DefaultConfig()
	with := func(f func(c *Config)) Config {
		c := DefaultConfig()
		f(&c)
		return c
	}
	ctors := []struct {
		name   string
		kind   Kind
		params []*layers.Param
		cfg    Config
		want   string
	}{
		{"unknown optimizer", "adam", []*layers.Param{w}, def, "unknown optimizer"},
		{"no parameters", "lars", nil, def, "at least one"},
		{"nil parameter", "sgd", []*layers.Param{w, nil}, def, "parameter 1"},
		{"gradient of another size", "adamw", []*layers.Param{w, bad}, def, "gradient"},
		{"duplicate names", "lars", []*layers.Param{w, b, dup}, def, "unique"},
		{"negative weight decay", "lars", []*layers.Param{w}, with(func(c *Config) { c.LARS.WeightDecay = -1 }), "weight decay"},
		{"momentum 1", "sgd", []*layers.Param{w}, with(func(c *Config) { c.SGD.Momentum = 1 }), "momentum"},
		{"zero η", "lars", []*layers.Param{w}, with(func(c *Config) { c.LARS.Eta = 0 }), "η"},
		{"β2 1", "adamw", []*layers.Param{w}, with(func(c *Config) { c.AdamW.Beta2 = 1 }), "β2"},
		{"zero eps", "adamw", []*layers.Param{w}, with(func(c *Config) { c.AdamW.Eps = 0 }), "eps"},
	}
	for _, c := range ctors {
		t.Run(c.name, func(t *testing.T) {
			o, err := New(c.kind, d, c.params, c.cfg)
			if err == nil {
				o.Release()
				t.Fatalf("no error, want one mentioning %q", c.want)
			}
			if o != nil {
				t.Errorf("an optimizer came back with the error %v", err)
			}
			if !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %q does not mention %q", err, c.want)
			}
		})
	}

	o, err := NewLARS(d, []*layers.Param{w, b}, DefaultLARSConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer o.Release()
	good, err := o.State()
	if err != nil {
		t.Fatal(err)
	}
	edit := func(f func(s *State)) *State {
		s := &State{Kind: good.Kind, Step: good.Step, Tensors: map[string][]float32{}}
		for k, v := range good.Tensors {
			s.Tensors[k] = slices.Clone(v)
		}
		f(s)
		return s
	}
	states := []struct {
		name string
		s    *State
		want string
	}{
		{"nil state", nil, "nil"},
		{"another optimizer's", edit(func(s *State) { s.Kind = "sgd" }), "sgd"},
		{"negative step", edit(func(s *State) { s.Step = -1 }), "step"},
		{"missing tensor", edit(func(s *State) { delete(s.Tensors, "b/momentum") }), "holds 1 tensors"},
		{"renamed tensor", edit(func(s *State) {
			s.Tensors["c/momentum"] = s.Tensors["b/momentum"]
			delete(s.Tensors, "b/momentum")
		}), "lacks b/momentum"},
		{"wrong length", edit(func(s *State) { s.Tensors["w/momentum"] = make([]float32, 11) }), "11 values"},
	}
	for _, c := range states {
		t.Run("SetState "+c.name, func(t *testing.T) {
			err := o.SetState(c.s)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one mentioning %q", err, c.want)
			}
		})
	}
	for _, lr := range [][2]float32{{-1, 0}, {0, float32(math.NaN())}, {float32(math.Inf(1)), 0}} {
		t.Run(fmt.Sprintf("Step lr %v", lr), func(t *testing.T) {
			r, err := d.Record(false)
			if err != nil {
				t.Fatal(err)
			}
			defer r.Discard()
			if err := o.Step(r, lr[0], lr[1]); err == nil || !strings.Contains(err.Error(), "learning rates") {
				t.Errorf("error %v, want one about the learning rates", err)
			}
		})
	}
	o.Release()
	if err := d.Run(func(r *gpu.Recorder) error { return o.Step(r, 1, 1) }); err == nil || !strings.Contains(err.Error(), "Release") {
		t.Errorf("Step after Release: error %v, want one about Release", err)
	}
}

func TestGrid(t *testing.T) {
	cases := []struct {
		groups, maxX, maxY int
		want               [3]int
		fail               bool
	}{
		{1, 65535, 65535, [3]int{1, 1, 1}, false},
		{65535, 65535, 65535, [3]int{65535, 1, 1}, false},
		{65536, 65535, 65535, [3]int{65535, 2, 1}, false},
		{10, 3, 65535, [3]int{3, 4, 1}, false},
		{10, math.MaxInt, 4, [3]int{4, 3, 1}, false},
		{17, math.MaxInt, 4, [3]int{}, true},
	}
	for _, c := range cases {
		g, err := grid(c.groups, c.maxX, c.maxY)
		if (err != nil) != c.fail || g != c.want {
			t.Errorf("grid(%d, %d, %d) = %v, %v; want %v, failure %v", c.groups, c.maxX, c.maxY, g, err, c.want, c.fail)
		}
		if err == nil && (g[0]*g[1] < c.groups || g[0]*(g[1]-1) >= c.groups) {
			t.Errorf("grid(%d, …) = %v does not cover the groups tightly", c.groups, g)
		}
	}
}

// BenchmarkLARSStep times a LARS step over a ResNet-18's parameter shapes
// without the classifier (11.2M values in 60 tensors); on lavapipe a step
// takes about 0.25 s. It runs with the norms summed in subgroups and in
// workgroup memory, and reports the norms kernels' device time apart.
func BenchmarkLARSStep(b *testing.B) {
	gputest.SubgroupModes(b, func(b *testing.B, d *gpu.Device) {
		var params []*layers.Param
		add := func(name string, shape ...int) {
			n := kcheck.Numel(shape)
			v, err := d.FromSlice(make([]float32, n), shape...)
			if err != nil {
				b.Fatal(err)
			}
			g, err := d.FromSlice(make([]float32, n), shape...)
			if err != nil {
				b.Fatal(err)
			}
			params = append(params, &layers.Param{Name: name, Value: v, Grad: g})
		}
		add("conv1", 64, 3, 7, 7)
		add("bn1.weight", 64)
		add("bn1.bias", 64)
		in := 64
		for l, c := range []int{64, 128, 256, 512} {
			for blk := range 2 {
				pre := fmt.Sprintf("layer%d.%d.", l+1, blk)
				add(pre+"conv1", c, in, 3, 3)
				add(pre+"bn1.weight", c)
				add(pre+"bn1.bias", c)
				add(pre+"conv2", c, c, 3, 3)
				add(pre+"bn2.weight", c)
				add(pre+"bn2.bias", c)
				if in != c {
					add(pre+"downsample.0", c, in, 1, 1)
					add(pre+"downsample.1.weight", c)
					add(pre+"downsample.1.bias", c)
				}
				in = c
			}
		}
		defer func() {
			for _, p := range params {
				p.Release()
			}
		}()
		o, err := NewLARS(d, params, DefaultLARSConfig())
		if err != nil {
			b.Fatal(err)
		}
		defer o.Release()
		values := 0
		for _, p := range params {
			values += p.Value.Len()
		}
		step := func() {
			if err := d.Run(func(r *gpu.Recorder) error { return o.Step(r, 0.1, 0.01) }); err != nil {
				b.Fatal(err)
			}
			d.Sync()
		}
		step()
		for b.Loop() {
			step()
		}
		sec := b.Elapsed().Seconds() / float64(b.N)
		b.ReportMetric(float64(values)/sec/1e9, "Gvalues/s")
		b.ReportMetric(float64(len(params)), "tensors")
		b.ReportMetric(gputest.KernelMillis(b, d, func(r *gpu.Recorder) error { return o.Step(r, 0.1, 0.01) }, "optim_norms{"), "norms-ms")
	})
}
