package gpu

import (
	"errors"
	"fmt"
	"unsafe"

	"github.com/bt-org/bt/trace"
	"github.com/oliverbestmann/webgpu/wgpu"
)

// Readback is a copy of a tensor on its way to the host, recorded into a
// recording so that reading a training step's loss does not stall the
// device: the step is submitted, later steps can be recorded, and the value
// is collected once the device has finished that step.
type Readback struct {
	d       *Device
	r       *Recorder
	n       int
	size    uint64
	staging *wgpu.Buffer
	m       *mapping // nil until Ready starts the map
}

// Readback records a copy of t into a host-mappable buffer. After Submit,
// Ready reports without blocking whether it has arrived and Wait collects
// it.
func (r *Recorder) Readback(t *Tensor) (*Readback, error) {
	if err := r.usable(); err != nil {
		return nil, err
	}
	if err := t.check(); err != nil {
		return nil, err
	}
	if t.DType != F32 {
		return nil, fmt.Errorf("gpu: readback of %v: only f32 tensors are read back in flight; Download converts", t)
	}
	if err := r.endPass(); err != nil {
		return nil, err
	}
	size := tensorBytes(t.n, F32)
	staging, err := r.d.pool.get(size, stagingUsage)
	if err != nil {
		return nil, err
	}
	if err := r.enc.TryCopyBufferToBuffer(t.buf, 0, staging, 0, size); err != nil {
		r.d.pool.put(staging, size, stagingUsage)
		return nil, err
	}
	return &Readback{d: r.d, r: r, n: t.n, size: size, staging: staging}, nil
}

// Ready reports whether the copy has arrived, polling the device without
// blocking.
func (b *Readback) Ready() (bool, error) {
	if b.staging == nil {
		return false, errors.New("gpu: readback already collected")
	}
	if !b.r.done {
		return false, errors.New("gpu: readback's recording has not been submitted")
	}
	if b.m == nil {
		b.m = new(mapping)
		if err := b.m.start(b.staging, b.size); err != nil {
			return false, err
		}
	}
	b.d.device.Poll(false, nil)
	return b.m.done(), nil
}

// Wait blocks until the copy has arrived and returns it.
func (b *Readback) Wait() ([]float32, error) {
	if _, err := b.Ready(); err != nil {
		return nil, err
	}
	defer b.d.Trace().Begin("readback", trace.Arg{Key: "bytes", Value: b.size}).End()
	b.d.wait(&b.r.index, b.m.done)
	defer func() {
		b.d.pool.put(b.staging, b.size, stagingUsage)
		b.staging = nil
	}()
	if err := b.m.err(); err != nil {
		return nil, fmt.Errorf("gpu: readback: %w", err)
	}
	out := make([]float32, b.n)
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), 4*b.n), b.staging.GetMappedRange(0, uint(b.size))[:4*b.n])
	return out, b.staging.TryUnmap()
}
