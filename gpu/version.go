package gpu

import (
	"fmt"

	"github.com/oliverbestmann/webgpu/wgpu"
)

// NativeVersion is the version of the wgpu-native library linked into this
// binary, as wgpuGetVersion reports it: one byte each of major, minor,
// patch and build, most significant first.
func NativeVersion() string {
	v := uint32(wgpu.GetVersion())
	return fmt.Sprintf("%d.%d.%d.%d", v>>24, v>>16&0xff, v>>8&0xff, v&0xff)
}
