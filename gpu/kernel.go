package gpu

import (
	"fmt"
	"regexp"
	"strconv"

	"github.com/bt-org/bt/shaders"
	"github.com/oliverbestmann/webgpu/wgpu"
)

// Kernel is a compiled compute pipeline. Its binding 0 is a uniform block of
// parameters; bindings 1… are storage buffers, bound in order.
type Kernel struct {
	Name      string // kernel name and specialisation, for errors and profiles
	Workgroup [3]int
	writable  []bool // per storage binding: declared read_write
	pipeline  *wgpu.ComputePipeline
	layout    *wgpu.BindGroupLayout
}

var (
	paramsRe    = regexp.MustCompile(`@group\(0\)\s*@binding\(0\)\s*var<uniform>`)
	bindingRe   = regexp.MustCompile(`@binding\((\d+)\)\s*var<storage,\s*(read|read_write)>`)
	workgroupRe = regexp.MustCompile(`@workgroup_size\((\d+)(?:,\s*(\d+))?(?:,\s*(\d+))?\)`)
)

// Kernel returns the kernel name specialised with spec, compiling it on
// first use and caching it for the device's lifetime. A WGSL error comes
// back with naga's message, the kernel's name and its specialisation.
func (d *Device) Kernel(name string, spec shaders.Spec) (*Kernel, error) {
	key := name + "{" + spec.Key() + "}"
	if k, ok := d.kernels[key]; ok {
		return k, nil
	}
	src, err := shaders.Render(name, spec)
	if err != nil {
		return nil, err
	}
	k := &Kernel{Name: key}
	if !paramsRe.MatchString(src) {
		return nil, fmt.Errorf("gpu: kernel %s must declare its parameters as @group(0) @binding(0) var<uniform>", key)
	}
	for i, m := range bindingRe.FindAllStringSubmatch(src, -1) {
		if b, _ := strconv.Atoi(m[1]); b != i+1 {
			return nil, fmt.Errorf("gpu: kernel %s: storage bindings must be numbered 1, 2, … in order; found %d at position %d", key, b, i+1)
		}
		k.writable = append(k.writable, m[2] == "read_write")
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

// compile builds k's pipeline from WGSL source. naga's diagnostics come
// back as errors, with the kernel's name and specialisation.
func (d *Device) compile(k *Kernel, src string) error {
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
