package gpu

import (
	"fmt"

	"github.com/oliverbestmann/webgpu/wgpu"
)

const (
	storageUsage = wgpu.BufferUsageStorage | wgpu.BufferUsageCopySrc | wgpu.BufferUsageCopyDst
	stagingUsage = wgpu.BufferUsageMapRead | wgpu.BufferUsageCopyDst
	uniformUsage = wgpu.BufferUsageUniform | wgpu.BufferUsageCopyDst
	resolveUsage = wgpu.BufferUsageQueryResolve | wgpu.BufferUsageCopySrc
)

type poolKey struct {
	size  uint64
	usage wgpu.BufferUsage
}

// pool keeps released buffers by exact size and usage. Training repeats the
// same shapes every step, so exact sizes are reused without the waste of
// power-of-two buckets, which would double the memory of large activations.
type pool struct {
	d     *Device
	free  map[poolKey][]*wgpu.Buffer
	live  uint64 // bytes held by callers
	idle  uint64 // bytes kept in the pool
	peak  uint64 // most bytes ever allocated at once
	count int    // buffers ever created
}

func newPool(d *Device) *pool { return &pool{d: d, free: map[poolKey][]*wgpu.Buffer{}} }

func (p *pool) get(size uint64, usage wgpu.BufferUsage) (*wgpu.Buffer, error) {
	k := poolKey{size, usage}
	if bufs := p.free[k]; len(bufs) > 0 {
		b := bufs[len(bufs)-1]
		p.free[k] = bufs[:len(bufs)-1]
		p.idle -= size
		p.live += size
		return b, nil
	}
	if size > p.d.Limits.MaxBufferSize {
		return nil, fmt.Errorf("gpu: a buffer of %d MiB exceeds the adapter's limit of %d MiB", size>>20, p.d.Limits.MaxBufferSize>>20)
	}
	b, err := p.d.device.TryCreateBuffer(&wgpu.BufferDescriptor{Size: size, Usage: usage})
	if err != nil {
		return nil, fmt.Errorf("gpu: allocating %d bytes: %w", size, err)
	}
	p.count++
	p.live += size
	p.peak = max(p.peak, p.live+p.idle)
	return b, nil
}

func (p *pool) put(b *wgpu.Buffer, size uint64, usage wgpu.BufferUsage) {
	k := poolKey{size, usage}
	p.free[k] = append(p.free[k], b)
	p.live -= size
	p.idle += size
}

func (p *pool) release() {
	p.d.dropBindGroups()
	for _, bufs := range p.free {
		for _, b := range bufs {
			b.Destroy()
			b.Release()
		}
	}
	p.free = nil
}

// MemStats reports the device memory bt holds.
type MemStats struct {
	Live    uint64 // bytes in tensors and buffers in use
	Idle    uint64 // bytes released to the pool, kept for reuse
	Peak    uint64 // most bytes held at once
	Buffers int    // buffers created since the device was opened
}

// MemStats reports the pool's current figures.
func (d *Device) MemStats() MemStats {
	return MemStats{Live: d.pool.live, Idle: d.pool.idle, Peak: d.pool.peak, Buffers: d.pool.count}
}

// ResetPeak starts MemStats.Peak afresh from what the pool holds now, so
// that a measurement counts its own high-water mark and not an earlier
// one's (call Trim first to leave out what earlier work left idle).
func (d *Device) ResetPeak() { d.pool.peak = d.pool.live + d.pool.idle }

// Trim frees the buffers the pool keeps for reuse. A tensor released after
// it was recorded has its buffer in the pool while the recording is open,
// and wgpu-native aborts the process on submitting work whose buffer was
// destroyed; so while recordings are open, the buffers are freed when the
// last of them is submitted or discarded. Work already submitted is
// unaffected: wgpu frees a buffer only once the work that uses it is done.
func (d *Device) Trim() {
	if d.open > 0 {
		d.trim = true
		return
	}
	d.trim = false
	d.pool.release()
	d.pool.free = map[poolKey][]*wgpu.Buffer{}
	d.pool.idle = 0
}
