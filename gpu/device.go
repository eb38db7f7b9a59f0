// Package gpu opens a WebGPU adapter (Vulkan, Metal or DX12 through
// wgpu-native), holds tensors in its memory, and records WGSL compute kernels
// into command buffers. Calls reach wgpu-native through the binding's
// error-returning (Try…) forms, and are validated in Go before that, so that
// misuse comes back as an error that names bt's shapes and kernels rather
// than wgpu's objects, and so that the calls that cannot return an error (a
// queue submit, a mapped range) never see invalid work: wgpu-native aborts
// the process on an error there (TestWgpuAborts).
package gpu

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/bt-org/bt/shaders"
	"github.com/oliverbestmann/webgpu/wgpu"
)

// Options chooses and configures the adapter that Open uses.
type Options struct {
	// Adapter picks an adapter by index (as listed by Adapters) or by a
	// case-insensitive substring of its name, and opens it whether or not
	// it passes the quick check. Empty means $BT_ADAPTER, and when that is
	// empty too, the best adapter that passes it: discrete before
	// integrated before virtual before CPU. The quick check compiles and
	// runs a GEMM and a reduction against float64 references; the adapters
	// it fails are in Device.Skipped, with the reason.
	Adapter string
	// Backend limits the adapters to one native API. BackendAuto means
	// $BT_BACKEND, and when that is empty too, Vulkan, Metal and DX12.
	Backend Backend
	// Verbose keeps wgpu-native's log messages and the window-system noise
	// that Vulkan drivers print on start.
	Verbose bool
	// NoSubgroups leaves the subgroups feature off where the adapter has it,
	// so that the reductions take their workgroup-memory fallback: the tests
	// run both paths on one adapter, and a user can avoid a driver whose
	// subgroup operations misbehave. $BT_NO_SUBGROUPS set does the same.
	NoSubgroups bool

	// refusePipelines makes every pipeline creation on the adapters it
	// returns true for fail, as wgpu does where a backend's shader compiler
	// cannot build a kernel: the tests' adapter that refuses pipelines.
	refusePipelines func(AdapterInfo) bool
}

// Skip is an adapter that Open passed over, and why.
type Skip struct {
	Adapter AdapterInfo
	Err     error
}

// String is s on one line: wgpu's errors span several ("Caused by: …").
func (s Skip) String() string {
	return fmt.Sprintf("%s: %s", s.Adapter, strings.Join(strings.Fields(s.Err.Error()), " "))
}

// AdapterInfo describes one adapter.
type AdapterInfo struct {
	Index   int
	Name    string
	Vendor  string
	Driver  string
	Type    string // DiscreteGPU, IntegratedGPU, CPU or Unknown
	Backend string // Vulkan, Metal, D3D12
	rank    int
}

func (a AdapterInfo) String() string {
	s := fmt.Sprintf("[%d] %s (%s, %s", a.Index, a.Name, a.Type, a.Backend)
	if a.Driver != "" {
		s += ", " + a.Driver
	}
	return s + ")"
}

// Device is an opened adapter with its queue, kernel cache and buffer pool.
// It is safe for use by one goroutine at a time.
type Device struct {
	Info     AdapterInfo
	Limits   wgpu.Limits
	Features []string
	// Subgroups reports whether kernels may use WGSL's subgroup operations
	// (the adapter has them and Options.NoSubgroups is unset). Their size
	// may differ from kernel to kernel, so kernels read it from the
	// subgroup_size builtin; SubgroupSize measures it for the report.
	Subgroups bool
	// F16 reports whether tensors may be stored as f16 (DType F16): the
	// adapter has WebGPU's shader-f16, which bt always asks for.
	F16 bool
	// Backend is the backend setting the adapters were listed with.
	Backend Backend
	// Skipped are the adapters ranked above this one that failed the quick
	// check (Options.Adapter) and were passed over.
	Skipped []Skip

	instance  *wgpu.Instance
	adapter   *wgpu.Adapter
	device    *wgpu.Device
	queue     *wgpu.Queue
	timestamp bool
	// hasSubgroups is whether the adapter offers subgroups, whether or not
	// Options.NoSubgroups left them off.
	hasSubgroups bool
	// refusePipelines fails every pipeline creation (Options.refusePipelines).
	refusePipelines bool

	kernels    map[string]*Kernel
	dispatches map[string]int // per shader file, recorded so far
	tracer     *tracer        // nil unless SetTrace
	pool       *pool
	binds      map[bindKey]*wgpu.BindGroup // kept bind groups (bindcache.go)
	bindHits   int
	bindMisses int
	open       int  // recordings neither submitted nor discarded
	trim       bool // a Trim waits for the open recordings

	tuning Tuning                 // tiles chosen by tuning (SetTuning)
	seen   map[GemmClass]GemmCase // products recorded, while CollectGemms is on
	// seenKernels is the other families' dispatches, while CollectKernels is on.
	seenKernels map[KernelClass]KernelCase
}

// noAdapterHelp is the advice every "no adapter" error carries.
const noAdapterHelp = "bt needs a Vulkan, Metal or DX12 driver; on Debian or Ubuntu without a GPU, " +
	"install the CPU driver with: apt-get install -y mesa-vulkan-drivers"

var quietOnce sync.Once

// quiet sets wgpu-native's log level, once per process: its log callback
// is process-wide. The Vulkan loader's Wayland probe still prints
// "XDG_RUNTIME_DIR is invalid" where that variable is unset; a program that
// minds sets it before Open (cmd/bt does).
func quiet(verbose bool) {
	quietOnce.Do(func() {
		if verbose {
			wgpu.SetLogLevel(wgpu.LogLevelWarn)
			return
		}
		wgpu.SetLogLevel(wgpu.LogLevelOff)
	})
}

// adapterTypes and backendNames keep the names bt has always printed, which
// `bt devices` and the benchmark records show, rather than the binding's
// kebab-case spellings.
var (
	adapterTypes = map[wgpu.AdapterType]string{
		wgpu.AdapterTypeDiscreteGPU: "DiscreteGPU", wgpu.AdapterTypeIntegratedGPU: "IntegratedGPU",
		wgpu.AdapterTypeCPU: "CPU",
	}
	backendNames = map[wgpu.BackendType]string{
		wgpu.BackendTypeVulkan: "Vulkan", wgpu.BackendTypeMetal: "Metal", wgpu.BackendTypeD3D12: "D3D12",
		wgpu.BackendTypeOpenGL: "OpenGL", wgpu.BackendTypeOpenGLES: "OpenGLES",
	}
)

func adapterInfo(i int, a *wgpu.Adapter) AdapterInfo {
	p := a.GetInfo()
	info := AdapterInfo{Index: i, Name: p.Device, Vendor: p.Vendor, Driver: p.Description,
		Type: adapterTypes[p.AdapterType], Backend: backendNames[p.BackendType]}
	if info.Type == "" {
		info.Type = "Unknown"
	}
	if info.Backend == "" {
		info.Backend = p.BackendType.String()
	}
	switch p.AdapterType {
	case wgpu.AdapterTypeDiscreteGPU:
		info.rank = 0
	case wgpu.AdapterTypeIntegratedGPU:
		info.rank = 1
	case wgpu.AdapterTypeCPU:
		info.rank = 3
	default:
		info.rank = 2
	}
	return info
}

// enumerate creates an instance and lists its adapters. The binding panics
// where wgpu-native returns no instance, which has no error-returning form;
// that panic comes back as an error.
func enumerate(verbose bool, b Backend) (inst *wgpu.Instance, ads []*wgpu.Adapter, infos []AdapterInfo, err error) {
	quiet(verbose)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gpu: wgpu-native could not create an instance (%v); %s", r, noAdapterHelp)
		}
	}()
	inst = wgpu.CreateInstance(&wgpu.InstanceDescriptor{Backends: b.flags()})
	ads = inst.EnumerateAdapters(nil)
	infos = make([]AdapterInfo, len(ads))
	for i, a := range ads {
		infos[i] = adapterInfo(i, a)
	}
	return inst, ads, infos, nil
}

// Adapters lists the adapters Open can choose from with the backend
// $BT_BACKEND names (all of BackendAuto's when it is unset).
func Adapters() ([]AdapterInfo, error) {
	b, err := envBackend(BackendAuto)
	if err != nil {
		return nil, err
	}
	return AdaptersOf(b)
}

// AdaptersOf lists the adapters of backend b.
func AdaptersOf(b Backend) ([]AdapterInfo, error) {
	inst, ads, infos, err := enumerate(false, b)
	if err != nil {
		return nil, err
	}
	for _, a := range ads {
		a.Release()
	}
	inst.Release()
	if len(infos) == 0 {
		return nil, noAdapter(b)
	}
	return infos, nil
}

func noAdapter(b Backend) error {
	if b != BackendAuto {
		return fmt.Errorf("gpu: no WebGPU adapter found with backend %s (-backend auto lists the others); %s", b, noAdapterHelp)
	}
	return errors.New("gpu: no WebGPU adapter found; " + noAdapterHelp)
}

// envBackend is b, or the backend $BT_BACKEND names where b is BackendAuto.
func envBackend(b Backend) (Backend, error) {
	if s := os.Getenv("BT_BACKEND"); b == BackendAuto && s != "" {
		if err := b.UnmarshalText([]byte(s)); err != nil {
			return 0, fmt.Errorf("gpu: $BT_BACKEND: %w", err)
		}
	}
	return b, nil
}

// ranked is the order in which Open tries the adapters when none is named:
// by type (discrete first, CPU last), then as listed.
func ranked(infos []AdapterInfo) []int {
	order := make([]int, len(infos))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(i, j int) int { return infos[i].rank - infos[j].rank })
	return order
}

// choose returns the index of the adapter that sel names.
func choose(infos []AdapterInfo, sel string) (int, error) {
	if i, err := strconv.Atoi(sel); err == nil {
		if i < 0 || i >= len(infos) {
			return 0, fmt.Errorf("gpu: adapter index %d out of range: %d adapter(s) found (run `bt devices` to list them)", i, len(infos))
		}
		return i, nil
	}
	for i, a := range infos {
		if strings.Contains(strings.ToLower(a.Name), strings.ToLower(sel)) {
			return i, nil
		}
	}
	names := make([]string, len(infos))
	for i, a := range infos {
		names[i] = a.String()
	}
	return 0, fmt.Errorf("gpu: no adapter name contains %q; found: %s", sel, strings.Join(names, "; "))
}

// isSubgroups reports whether f lets WGSL use subgroup operations: WebGPU's
// "subgroups" feature, or wgpu-native's own, which is what wgpu-native 29
// offers on Vulkan (lavapipe lists only the native one).
func isSubgroups(f wgpu.FeatureName) bool {
	return f == wgpu.FeatureNameSubgroups || f == wgpu.NativeFeatureSubgroup
}

// Open opens the adapter that opts chooses and creates a device on it with
// the adapter's own maxima for buffer sizes and workgroup storage, so that
// an 8192×8192 matrix fits in one binding where the adapter allows it.
// Where opts names no adapter, Open tries them best first and takes the
// first whose device passes the quick check; it fails, naming each adapter
// and its error, when none does.
func Open(opts Options) (*Device, error) {
	if opts.Adapter == "" {
		opts.Adapter = os.Getenv("BT_ADAPTER")
	}
	if os.Getenv("BT_VERBOSE") != "" {
		opts.Verbose = true
	}
	if os.Getenv("BT_NO_SUBGROUPS") != "" {
		opts.NoSubgroups = true
	}
	backend, err := envBackend(opts.Backend)
	if err != nil {
		return nil, err
	}
	inst, ads, infos, err := enumerate(opts.Verbose, backend)
	if err != nil {
		return nil, err
	}
	// Each adapter is released once: the chosen one by Device.Release,
	// with the instance.
	chosen := -1
	defer func() {
		for i, a := range ads {
			if i != chosen {
				a.Release()
			}
		}
		if chosen < 0 {
			inst.Release()
		}
	}()
	if len(ads) == 0 {
		return nil, noAdapter(backend)
	}
	if opts.Adapter != "" {
		idx, err := choose(infos, opts.Adapter)
		if err != nil {
			return nil, err
		}
		d, err := openAdapter(ads[idx], infos[idx], opts)
		if err != nil {
			return nil, err
		}
		chosen = idx
		d.instance, d.Backend = inst, backend
		return d, nil
	}
	var skipped []Skip
	for _, idx := range ranked(infos) {
		d, err := openAdapter(ads[idx], infos[idx], opts)
		if err == nil {
			if err = d.quickCheck(); err != nil {
				d.close()
			}
		}
		if err != nil {
			skipped = append(skipped, Skip{infos[idx], err})
			continue
		}
		chosen = idx
		d.instance, d.Backend, d.Skipped = inst, backend, skipped
		return d, nil
	}
	msgs := make([]string, len(skipped))
	for i, s := range skipped {
		msgs[i] = s.String()
	}
	return nil, fmt.Errorf("gpu: no adapter passed bt's quick check (-adapter or $BT_ADAPTER opens one all the same): %s", strings.Join(msgs, "; "))
}

// openAdapter creates a device on adapter, which stays the caller's to
// release until the device is returned.
func openAdapter(adapter *wgpu.Adapter, info AdapterInfo, opts Options) (*Device, error) {
	limits := adapter.GetLimits()
	var features []wgpu.FeatureName
	var names []string
	for _, f := range adapter.GetFeatures() {
		// Features newer than the binding's table have no name; the
		// report lists those it can name.
		if n := f.String(); n != "" {
			names = append(names, n)
		}
		if f == wgpu.FeatureNameTimestampQuery || f == wgpu.FeatureNameShaderF16 || isSubgroups(f) && !opts.NoSubgroups {
			features = append(features, f)
		}
	}
	// Zero-valued fields of a required limit are read as "0 allowed", so
	// start from the adapter's own figures, which are all attainable.
	dev, err := adapter.RequestDevice(&wgpu.DeviceDescriptor{
		Label:            "bt",
		RequiredFeatures: features,
		RequiredLimits:   &limits,
	})
	if err != nil {
		return nil, fmt.Errorf("gpu: adapter %s refused a device with its own limits: %v", info, err)
	}
	d := &Device{
		Info:            info,
		Limits:          dev.GetLimits(),
		Features:        names,
		adapter:         adapter,
		device:          dev,
		queue:           dev.GetQueue(),
		Subgroups:       slices.ContainsFunc(dev.GetFeatures(), isSubgroups),
		F16:             dev.HasFeature(wgpu.FeatureNameShaderF16),
		timestamp:       dev.HasFeature(wgpu.FeatureNameTimestampQuery),
		hasSubgroups:    slices.ContainsFunc(adapter.GetFeatures(), isSubgroups),
		refusePipelines: opts.refusePipelines != nil && opts.refusePipelines(info),
		kernels:         map[string]*Kernel{},
		dispatches:      map[string]int{},
	}
	d.pool = newPool(d)
	return d, nil
}

// Dispatches returns how many dispatches of each shader file (the name
// given to Kernel) have been recorded on d, so that a check can tell which
// kernels a piece of work ran.
func (d *Device) Dispatches() map[string]int { return maps.Clone(d.dispatches) }

// HasTimestamps reports whether per-kernel timing is available.
func (d *Device) HasTimestamps() bool { return d.timestamp }

// IsCPU reports whether the adapter is a software rasteriser such as
// lavapipe; kernels choose CPU-friendly specialisations there.
func (d *Device) IsCPU() bool { return d.Info.Type == adapterTypes[wgpu.AdapterTypeCPU] }

// MaxLoopSteps bounds the loop iterations one invocation may run on a CPU
// adapter. lavapipe (gallivm) guards against endless loops by ending all of
// an invocation's loops once they have run 65,535 iterations in all,
// silently: a longer reduction would return a partial result. Kernels whose
// loops grow with the data split the work so that each invocation stays
// under this, with room for their shorter loops.
const MaxLoopSteps = 1 << 15

// Release frees every kernel, pooled buffer and the device itself. Tensors
// still held by the caller become invalid.
func (d *Device) Release() {
	if d == nil || d.device == nil {
		return
	}
	d.close()
	d.adapter.Release()
	d.instance.Release()
}

// close frees the kernels, the pool and the device, leaving the adapter
// and the instance to their owner.
func (d *Device) close() {
	d.pool.release() // and the kept bind groups, before their layouts
	for _, k := range d.kernels {
		k.release()
	}
	d.kernels = nil
	d.queue.Release()
	d.device.Release()
	d.device = nil
}

// Report is a human-readable description of the adapter and its limits.
func (d *Device) Report() string {
	var b strings.Builder
	fmt.Fprintf(&b, "adapter  %s\n", d.Info)
	fmt.Fprintf(&b, "vendor   %s\n", d.Info.Vendor)
	fmt.Fprintf(&b, "backend  %s (-backend or $BT_BACKEND: %s)\n", d.Backend.describe(), strings.Join(backendSpellings[:], ", "))
	for _, s := range d.Skipped {
		fmt.Fprintf(&b, "skipped  %s\n", s)
	}
	l := d.Limits
	fmt.Fprintf(&b, "limits   buffer %d MiB, storage binding %d MiB, workgroup storage %d KiB, %d invocations/workgroup, %d workgroups/dimension\n",
		l.MaxBufferSize>>20, l.MaxStorageBufferBindingSize>>20, l.MaxComputeWorkgroupStorageSize>>10,
		l.MaxComputeInvocationsPerWorkgroup, l.MaxComputeWorkgroupsPerDimension)
	fmt.Fprintf(&b, "features %s\n", strings.Join(d.Features, " "))
	switch {
	case d.Subgroups:
		if lo, hi, err := d.SubgroupSize(); err != nil {
			fmt.Fprintf(&b, "subgroups on; the size probe failed: %v\n", err)
		} else if lo == hi {
			fmt.Fprintf(&b, "subgroups on, %d lanes in a probe kernel (reductions use them)\n", lo)
		} else {
			fmt.Fprintf(&b, "subgroups on, %d to %d lanes in a probe kernel (reductions use them)\n", lo, hi)
		}
	case d.hasSubgroups:
		b.WriteString("subgroups off by request (Options.NoSubgroups or $BT_NO_SUBGROUPS); reductions use workgroup memory\n")
	default:
		b.WriteString("subgroups none on this adapter; reductions use workgroup memory\n")
	}
	if d.F16 {
		b.WriteString("f16      shader-f16: mixed precision available (-precision f16)\n")
	} else {
		b.WriteString("f16      none on this adapter: f32 only\n")
	}
	return b.String()
}

// subgroupProbeWG is the workgroup of the subgroup-size probe: the size of
// bt's reduction workgroups.
const subgroupProbeWG = 256

// SubgroupSize runs a probe kernel and returns the smallest and largest
// subgroup size its invocations ran with. The binding does not pass on the
// adapter's own range (WGPUAdapterInfo's subgroupMinSize and
// subgroupMaxSize), and an adapter may pick the size per kernel, so this
// describes one kernel: bt's kernels read the size from the subgroup
// builtins rather than assume it.
func (d *Device) SubgroupSize() (lo, hi int, err error) {
	if !d.Subgroups {
		return 0, 0, fmt.Errorf("gpu: %s has subgroups off", d.Info.Name)
	}
	k, err := d.Kernel("subgroup_size", shaders.SubgroupProbe{Threads: shaders.Threads{WG: subgroupProbeWG}})
	if err != nil {
		return 0, 0, err
	}
	out, err := d.NewTensor(subgroupProbeWG)
	if err != nil {
		return 0, 0, err
	}
	defer out.Release()
	if err := d.Run(func(r *Recorder) error {
		return r.Dispatch(k, [3]int{1, 1, 1}, Params{}.U(subgroupProbeWG), out)
	}); err != nil {
		return 0, 0, err
	}
	sizes, err := out.Download()
	if err != nil {
		return 0, 0, err
	}
	lo, hi = int(sizes[0]), int(sizes[0])
	for _, s := range sizes {
		lo, hi = min(lo, int(s)), max(hi, int(s))
	}
	return lo, hi, nil
}
