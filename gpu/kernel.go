package gpu

import (
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/oliverbestmann/webgpu/wgpu"

	"github.com/bt-org/bt/shaders"
)

// Kernel is a compiled compute pipeline. Its binding 0 is a uniform block of
// parameters, the WGSL struct Params, whose fields Dispatch checks the
// packed Params against; bindings 1… are storage buffers, bound in order.
type Kernel struct {
	Name      string // kernel name and specialisation, for errors and profiles
	shader    string // the shader file, counted by Device.Dispatches
	Workgroup [3]int
	writable  []bool  // per storage binding: declared read_write
	half      []bool  // per storage binding: an array of f16 (or of f16 vectors)
	params    []field // the fields of struct Params, in order
	pipeline  *wgpu.ComputePipeline
	layout    *wgpu.BindGroupLayout
}

var (
	paramsRe    = regexp.MustCompile(`@group\(0\)\s*@binding\(0\)\s*var<uniform>\s*\w+\s*:\s*Params\s*;`)
	structRe    = regexp.MustCompile(`\bstruct\s+Params\s*\{([^}]*)\}`)
	commentRe   = regexp.MustCompile(`//[^\n]*|(?s:/\*.*?\*/)`)
	fieldRe     = regexp.MustCompile(`^(\w+)\s*:\s*(\w+)$`)
	bindingRe   = regexp.MustCompile(`@binding\((\d+)\)\s*var<storage,\s*(read|read_write)>\s*\w+\s*:\s*array<([^;]*)>\s*;`)
	workgroupRe = regexp.MustCompile(`@workgroup_size\((\d+)(?:,\s*(\d+))?(?:,\s*(\d+))?\)`)
)

// Kernel returns the kernel name specialised with spec, compiling it on
// first use and caching it for the device's lifetime. A WGSL error comes
// back with naga's message, the kernel's name and its specialisation.
func (d *Device) Kernel(name string, spec shaders.Specialisation) (*Kernel, error) {
	key := name + "{" + spec.Key() + "}"
	if k, ok := d.kernels[key]; ok {
		return k, nil
	}
	src, err := shaders.Render(name, spec)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Name: key, shader: name}
	if !paramsRe.MatchString(src) {
		return nil, fmt.Errorf("gpu: kernel %s must declare its parameters as @group(0) @binding(0) var<uniform> p: Params", key)
	}
	if k.params, err = parseParams(src); err != nil {
		return nil, fmt.Errorf("gpu: kernel %s: %w", key, err)
	}
	for i, m := range bindingRe.FindAllStringSubmatch(src, -1) {
		if b, _ := strconv.Atoi(m[1]); b != i+1 {
			return nil, fmt.Errorf("gpu: kernel %s: storage bindings must be numbered 1, 2, … in order; found %d at position %d", key, b, i+1)
		}
		k.writable = append(k.writable, m[2] == "read_write")
		k.half = append(k.half, strings.Contains(m[3], "f16"))
	}
	wg := workgroupRe.FindStringSubmatch(src)
	if wg == nil {
		return nil, fmt.Errorf("gpu: kernel %s has no literal @workgroup_size", key)
	}
	k.Workgroup = [3]int{1, 1, 1}
	for i := range 3 {
		if wg[i+1] != "" {
			k.Workgroup[i], _ = strconv.Atoi(wg[i+1])
		}
	}
	inv := k.Workgroup[0] * k.Workgroup[1] * k.Workgroup[2]
	if l := d.Limits; inv > int(l.MaxComputeInvocationsPerWorkgroup) || k.Workgroup[0] > int(l.MaxComputeWorkgroupSizeX) || k.Workgroup[1] > int(l.MaxComputeWorkgroupSizeY) {
		return nil, fmt.Errorf("gpu: kernel %s uses workgroups of %v, beyond %s's limit of %d invocations", key, k.Workgroup, d.Info.Name, l.MaxComputeInvocationsPerWorkgroup)
	}
	if len(k.writable) > int(d.Limits.MaxStorageBuffersPerShaderStage) {
		return nil, fmt.Errorf("gpu: kernel %s binds %d storage buffers; %s allows %d", key, len(k.writable), d.Info.Name, d.Limits.MaxStorageBuffersPerShaderStage)
	}

	if err := d.compile(k, src); err != nil {
		return nil, err
	}
	d.kernels[key] = k
	return k, nil
}

// scalar is the type of one 32-bit word of a kernel's parameters.
type scalar uint8

const (
	u32 scalar = iota
	i32
	f32
)

func (s scalar) String() string { return [...]string{"u32", "i32", "f32"}[s] }

var scalars = map[string]scalar{"u32": u32, "i32": i32, "f32": f32}

// field is one member of a kernel's struct Params.
type field struct {
	name string
	typ  scalar
}

// parseParams reads the fields of the WGSL struct Params in src. Only
// 32-bit scalars are accepted: Params packs one word per field, and any
// wider or aligned type would put later fields at offsets it does not know.
func parseParams(src string) ([]field, error) {
	m := structRe.FindStringSubmatch(commentRe.ReplaceAllString(src, ""))
	if m == nil {
		return nil, errors.New("no struct Params")
	}
	var fs []field
	for _, decl := range strings.Split(m[1], ",") {
		decl = strings.TrimSpace(decl)
		if decl == "" { // the trailing comma WGSL allows
			continue
		}
		fm := fieldRe.FindStringSubmatch(decl)
		if fm == nil {
			return nil, fmt.Errorf("struct Params member %q is not of the form name: u32, i32 or f32", decl)
		}
		t, ok := scalars[fm[2]]
		if !ok {
			return nil, fmt.Errorf("struct Params field %q has type %s; only u32, i32 and f32 can be packed", fm[1], fm[2])
		}
		fs = append(fs, field{fm[1], t})
	}
	if len(fs) == 0 {
		return nil, errors.New("struct Params has no fields")
	}
	return fs, nil
}

// checkParams checks p word by word against k's struct Params: the words
// are packed by position, so a missing, extra or mistyped word would
// otherwise be read silently as the wrong value.
func (k *Kernel) checkParams(p Params) error {
	for i, f := range k.params {
		if i == len(p.kinds) {
			return fmt.Errorf("gpu: kernel %s: Params field %d %q is %s, got no value", k.Name, i+1, f.name, f.typ)
		}
		if p.kinds[i] != f.typ {
			return fmt.Errorf("gpu: kernel %s: Params field %d %q is %s, got %s", k.Name, i+1, f.name, f.typ, p.kinds[i])
		}
	}
	if n := len(k.params); len(p.kinds) > n {
		return fmt.Errorf("gpu: kernel %s: Params value %d (%s) is beyond struct Params's %d fields", k.Name, n+1, p.kinds[n], n)
	}
	return nil
}

// compile builds k's pipeline from WGSL source. naga's diagnostics come
// back as errors, with the kernel's name and specialisation.
func (d *Device) compile(k *Kernel, src string) error {
	if d.refusePipelines {
		return fmt.Errorf("gpu: creating pipeline for kernel %s: refused by Options.refusePipelines", k.Name)
	}
	mod, err := d.device.TryCreateShaderModule(&wgpu.ShaderModuleDescriptor{
		Label:      k.Name,
		WGSLSource: &wgpu.ShaderSourceWGSL{Code: src},
	})
	if err != nil {
		return fmt.Errorf("gpu: compiling kernel %s: %w", k.Name, err)
	}
	defer mod.Release()
	p, err := d.device.TryCreateComputePipeline(&wgpu.ComputePipelineDescriptor{
		Label:   k.Name,
		Compute: wgpu.ProgrammableStageDescriptor{Module: mod, EntryPoint: "main"},
	})
	if err != nil {
		return fmt.Errorf("gpu: creating pipeline for kernel %s: %w", k.Name, err)
	}
	// Every kernel declares its parameters at group 0, binding 0 (checked
	// in Kernel), so group 0 exists: wgpu-native would abort rather than
	// return an error where it did not.
	k.pipeline, k.layout = p, p.GetBindGroupLayout(0)
	return nil
}

func (k *Kernel) release() {
	k.layout.Release()
	k.pipeline.Release()
}
