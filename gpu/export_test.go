package gpu

import "strings"

// RefusePipelines returns opts with every pipeline creation failing on the
// adapters whose names contain name: an adapter whose shader compiler
// cannot build bt's kernels.
func RefusePipelines(opts Options, name string) Options {
	opts.refusePipelines = func(a AdapterInfo) bool { return strings.Contains(a.Name, name) }
	return opts
}

// CompiledKernels lists the keys (name{specialisation}) of the kernels the
// device has compiled, so a test can tell which variants ran.
func CompiledKernels(d *Device) []string {
	var out []string
	for k := range d.kernels {
		out = append(out, k)
	}
	return out
}
