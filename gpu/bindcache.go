package gpu

import (
	"fmt"

	"github.com/oliverbestmann/webgpu/wgpu"
)

// A training step records the same few hundred dispatches every step, over
// tensors that come back from the pool in the same order and uniforms at
// the same offsets of the same pooled chunks: the bind groups of one step
// are those of the next. The device keeps them, keyed by everything they
// bind, and a recording reuses a kept group instead of creating one (a
// call into the native library that validates every entry).

// maxCachedBindings is the most storage buffers a kept bind group binds;
// groups of kernels with more are created per dispatch.
const maxCachedBindings = 12

// maxBindGroups bounds the kept groups: past it the device lets all of
// them go and starts again (work whose tensors change every time, such as
// one-off evaluations, then costs what it did without the cache).
const maxBindGroups = 8192

// bindKey is a bind group's layout and entries.
type bindKey struct {
	layout       *wgpu.BindGroupLayout
	uniform      *wgpu.Buffer
	offset, size uint64
	n            int
	bufs         [maxCachedBindings]*wgpu.Buffer
	bytes        [maxCachedBindings]uint64
}

// bindGroup returns the bind group of kernel k over the uniform slot and
// bufs, and whether the device keeps it (the caller then must not release
// it).
func (d *Device) bindGroup(k *Kernel, uniform *wgpu.Buffer, offset, size uint64, bufs []*Tensor) (*wgpu.BindGroup, bool, error) {
	key := bindKey{layout: k.layout, uniform: uniform, offset: offset, size: size, n: len(bufs)}
	keep := len(bufs) <= maxCachedBindings
	if keep {
		for i, t := range bufs {
			key.bufs[i], key.bytes[i] = t.buf, t.bytes
		}
		if bg, ok := d.binds[key]; ok {
			d.bindHits++
			return bg, true, nil
		}
	}
	entries := make([]wgpu.BindGroupEntry, 0, len(bufs)+1)
	entries = append(entries, wgpu.BindGroupEntry{Binding: 0, Buffer: uniform, Offset: offset, Size: size})
	for i, t := range bufs {
		entries = append(entries, wgpu.BindGroupEntry{Binding: uint32(i + 1), Buffer: t.buf, Offset: 0, Size: t.bytes})
	}
	bg, err := d.device.TryCreateBindGroup(&wgpu.BindGroupDescriptor{Layout: k.layout, Entries: entries})
	if err != nil {
		return nil, false, fmt.Errorf("gpu: binding buffers for kernel %s: %w", k.Name, err)
	}
	d.bindMisses++
	if !keep {
		return bg, false, nil
	}
	if len(d.binds) >= maxBindGroups {
		d.dropBindGroups()
	}
	if d.binds == nil {
		d.binds = map[bindKey]*wgpu.BindGroup{}
	}
	d.binds[key] = bg
	return bg, true, nil
}

// dropBindGroups lets every kept bind group go: before the buffers or
// layouts they bind are destroyed, and when there are too many. Work
// already submitted keeps what it uses.
func (d *Device) dropBindGroups() {
	for _, bg := range d.binds {
		bg.Release()
	}
	d.binds = nil
}

// BindGroupStats reports how many dispatches reused a kept bind group
// (hits) and how many created one (misses) since the device was opened.
func (d *Device) BindGroupStats() (hits, misses int) { return d.bindHits, d.bindMisses }
