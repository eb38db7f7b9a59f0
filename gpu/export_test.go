package gpu

import "strings"

// StageConvTiles makes convolutions use the staged tiles that GPUs get on
// any adapter, until the returned function restores the default.
func StageConvTiles() (restore func()) {
	stagedConvTiles = true
	return func() { stagedConvTiles = false }
}

// PerImageConv makes direct tiles run convolutions image by image, until
// the returned function restores the default.
func PerImageConv() (restore func()) {
	perImageConv = true
	return func() { perImageConv = false }
}

// RefusePipelines returns opts with every pipeline creation failing on the
// adapters whose names contain name: an adapter whose shader compiler
// cannot build bt's kernels.
func RefusePipelines(opts Options, name string) Options {
	opts.refusePipelines = func(a AdapterInfo) bool { return strings.Contains(a.Name, name) }
	return opts
}
