package gpu

import (
	"fmt"
	"strings"

	"github.com/oliverbestmann/webgpu/wgpu"
)

// Backend is the native API through which wgpu-native runs bt's kernels.
type Backend uint8

// The backends Options.Backend and $BT_BACKEND choose from.
const (
	// BackendAuto lists the adapters of Vulkan, Metal and DX12, whichever
	// the platform has. OpenGL is left out: its compute support in wgpu
	// lacks the storage-buffer sizes and timestamp queries bt uses, and it
	// would list a Vulkan adapter a second time.
	BackendAuto Backend = iota
	BackendVulkan
	BackendMetal
	BackendDX12
	BackendGL
)

var backendSpellings = [...]string{"auto", "vulkan", "metal", "dx12", "gl"}

// Backends lists every Backend, for help texts and tests.
func Backends() []Backend {
	return []Backend{BackendAuto, BackendVulkan, BackendMetal, BackendDX12, BackendGL}
}

func (b Backend) String() string {
	if int(b) < len(backendSpellings) {
		return backendSpellings[b]
	}
	return fmt.Sprintf("Backend(%d)", uint8(b))
}

// MarshalText writes the name that UnmarshalText reads.
func (b Backend) MarshalText() ([]byte, error) {
	if int(b) >= len(backendSpellings) {
		return nil, fmt.Errorf("gpu: unknown backend %d", uint8(b))
	}
	return []byte(b.String()), nil
}

// UnmarshalText reads a backend's name, in any case; "d3d12" is read as dx12.
func (b *Backend) UnmarshalText(text []byte) error {
	s := strings.ToLower(strings.TrimSpace(string(text)))
	if s == "d3d12" {
		s = "dx12"
	}
	for i, n := range backendSpellings {
		if s == n {
			*b = Backend(i)
			return nil
		}
	}
	return fmt.Errorf("unknown backend %q; want one of %s", string(text), strings.Join(backendSpellings[:], ", "))
}

// flags are wgpu.h's WGPUInstanceBackend bits for b: the binding names only
// "all" of them.
func (b Backend) flags() wgpu.InstanceBackend {
	const vulkan, gl, metal, dx12 = 1 << 0, 1 << 1, 1 << 2, 1 << 3
	switch b {
	case BackendVulkan:
		return vulkan
	case BackendMetal:
		return metal
	case BackendDX12:
		return dx12
	case BackendGL:
		return gl
	}
	return vulkan | metal | dx12
}

// describe is b with the APIs it covers, for reports.
func (b Backend) describe() string {
	if b == BackendAuto {
		return "auto (Vulkan, Metal, DX12)"
	}
	return b.String()
}
