package gpu

import (
	"errors"
	"fmt"
	"math"
	"sync/atomic"
	"unsafe"

	"github.com/oliverbestmann/webgpu/wgpu"
	"github.com/x448/float16"

	"github.com/bt-org/bt/shaders"
	"github.com/bt-org/bt/trace"
)

// Tensor is a dense array in device memory, row-major, with a shape, of
// float32 or, for mixed precision, IEEE half-precision elements (DType).
// Tensors come from the device's pool: Release returns the memory there, so
// a training step that allocates the same shapes every time allocates nothing
// after the first.
type Tensor struct {
	Shape []int
	DType DType
	n     int
	buf   *wgpu.Buffer
	bytes uint64
	dev   *Device
}

// Len is the number of elements.
func (t *Tensor) Len() int { return t.n }

// Bytes is the size of the tensor's buffer in bytes.
func (t *Tensor) Bytes() uint64 { return t.bytes }

func (t *Tensor) String() string {
	if t.DType == F16 {
		return fmt.Sprintf("f16 tensor%v", t.Shape)
	}
	return fmt.Sprintf("tensor%v", t.Shape)
}

func numel(shape []int) (int, error) {
	if len(shape) == 0 {
		return 0, errors.New("gpu: a tensor needs at least one dimension")
	}
	n := 1
	for _, s := range shape {
		if s <= 0 {
			return 0, fmt.Errorf("gpu: tensor shape %v has a dimension ≤ 0", shape)
		}
		if n > math.MaxInt32/s {
			return 0, fmt.Errorf("gpu: tensor shape %v has more than 2³¹ elements", shape)
		}
		n *= s
	}
	return n, nil
}

// DType is a tensor's element type in device memory.
type DType uint8

const (
	F32 DType = iota
	// F16 is IEEE half precision, for storage only: kernels convert to
	// float32 on load and back on store, and Upload and Download convert
	// on the host. Only where Device.F16.
	F16
)

// Size is an element's size in bytes.
func (t DType) Size() int { return [...]int{4, 2}[t] }

// spec is the type as a kernel's specialisation names it: f32 is the zero
// value, so that the f32 kernels' names stay as they were.
func (t DType) spec() shaders.Elem { return [...]shaders.Elem{"", shaders.F16}[t] }

func (t DType) String() string { return [...]string{"f32", "f16"}[t] }

// tensorBytes rounds the size up to 16 bytes so that any tensor can be
// bound as an array of vec4.
func tensorBytes(n int, t DType) uint64 { return (uint64(n)*uint64(t.Size()) + 15) &^ 15 }

// NewTensor allocates an uninitialised float32 tensor of the given shape.
// Kernels bind whole tensors, so a tensor may not exceed the adapter's
// storage binding limit.
func (d *Device) NewTensor(shape ...int) (*Tensor, error) { return d.NewTensorOf(F32, shape...) }

// NewTensorOf is NewTensor with elements of type t.
func (d *Device) NewTensorOf(t DType, shape ...int) (*Tensor, error) {
	if t > F16 {
		return nil, fmt.Errorf("gpu: unknown element type %d", t)
	}
	if t == F16 && !d.F16 {
		return nil, fmt.Errorf("gpu: %s has no shader-f16, so no f16 tensors; use f32", d.Info.Name)
	}
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	size := tensorBytes(n, t)
	if limit := d.maxBinding(); size > limit {
		return nil, fmt.Errorf("gpu: tensor%v needs %d MiB but %s binds at most %d MiB per buffer; use a smaller batch or width",
			shape, size>>20, d.Info.Name, limit>>20)
	}
	buf, err := d.pool.get(size, storageUsage)
	if err != nil {
		return nil, err
	}
	return &Tensor{Shape: append([]int(nil), shape...), DType: t, n: n, buf: buf, bytes: size, dev: d}, nil
}

func (d *Device) maxBinding() uint64 {
	return min(d.Limits.MaxStorageBufferBindingSize, d.Limits.MaxBufferSize)
}

// FromSlice allocates a tensor of the given shape holding data.
func (d *Device) FromSlice(data []float32, shape ...int) (*Tensor, error) {
	t, err := d.NewTensor(shape...)
	if err != nil {
		return nil, err
	}
	if err := t.Upload(data); err != nil {
		t.Release()
		return nil, err
	}
	return t, nil
}

// Release returns the tensor's memory to the pool. The tensor must not be
// used afterwards; work already submitted that reads it is unaffected.
func (t *Tensor) Release() {
	if t == nil || t.buf == nil {
		return
	}
	t.dev.pool.put(t.buf, t.bytes, storageUsage)
	t.buf = nil
}

// Reshape returns a tensor sharing t's memory with another shape of the same
// number of elements. Release only one of the two.
func (t *Tensor) Reshape(shape ...int) (*Tensor, error) {
	n, err := numel(shape)
	if err != nil {
		return nil, err
	}
	if n != t.n {
		return nil, fmt.Errorf("gpu: cannot reshape %v (%d elements) to %v (%d elements)", t.Shape, t.n, shape, n)
	}
	r := *t
	r.Shape = append([]int(nil), shape...)
	return &r, nil
}

func (t *Tensor) check() error {
	if t == nil || t.buf == nil {
		return errors.New("gpu: use of a nil or released tensor")
	}
	return nil
}

// Upload copies data into the tensor, rounded to the nearest f16 for an
// F16 tensor. It is queued before any later submit.
func (t *Tensor) Upload(data []float32) error {
	if err := t.check(); err != nil {
		return err
	}
	if len(data) != t.n {
		return fmt.Errorf("gpu: upload of %d values into %v, which holds %d", len(data), t, t.n)
	}
	if len(data) == 0 {
		return nil
	}
	defer t.dev.Trace().Begin("upload", trace.Arg{Key: "bytes", Value: t.bytes}).End()
	if t.DType == F16 {
		// Writes are whole 4-byte words; the buffer has room for the pad.
		h := make([]uint16, (len(data)+1)&^1)
		for i, v := range data {
			h[i] = uint16(float16.Fromfloat32(v))
		}
		return t.dev.queue.TryWriteBuffer(t.buf, 0, unsafe.Slice((*byte)(unsafe.Pointer(&h[0])), len(h)*2))
	}
	b := unsafe.Slice((*byte)(unsafe.Pointer(&data[0])), len(data)*4)
	return t.dev.queue.TryWriteBuffer(t.buf, 0, b)
}

// Download waits for all submitted work and returns the tensor's contents,
// as float32 whatever the tensor's type.
func (t *Tensor) Download() ([]float32, error) {
	if err := t.check(); err != nil {
		return nil, err
	}
	defer t.dev.Trace().Begin("download", trace.Arg{Key: "bytes", Value: t.bytes}).End()
	out := make([]float32, t.n)
	if t.DType == F16 {
		h := make([]uint16, t.n)
		if err := t.dev.read(t.buf, 0, unsafe.Slice((*byte)(unsafe.Pointer(&h[0])), t.n*2)); err != nil {
			return nil, fmt.Errorf("gpu: download of %v: %w", t, err)
		}
		for i, v := range h {
			out[i] = float16.Frombits(v).Float32()
		}
		return out, nil
	}
	if err := t.dev.read(t.buf, 0, unsafe.Slice((*byte)(unsafe.Pointer(&out[0])), t.n*4)); err != nil {
		return nil, fmt.Errorf("gpu: download of %v: %w", t, err)
	}
	return out, nil
}

// read copies len(dst) bytes at offset of src into dst through a mappable
// staging buffer. The copy is recorded and submitted in its own command
// buffer after all earlier work, then the map is awaited by waiting for that
// submission until the map callback has reported; GetMappedRange is only
// called after a successful map, since calling it otherwise aborts the
// process.
func (d *Device) read(src *wgpu.Buffer, offset uint64, dst []byte) error {
	size := (uint64(len(dst)) + 15) &^ 15
	staging, err := d.pool.get(size, stagingUsage)
	if err != nil {
		return err
	}
	defer d.pool.put(staging, size, stagingUsage)

	enc, err := d.device.TryCreateCommandEncoder(nil)
	if err != nil {
		return err
	}
	defer enc.Release()
	if err := enc.TryCopyBufferToBuffer(src, offset, staging, 0, size); err != nil {
		return err
	}
	cmd, err := enc.TryFinish(nil)
	if err != nil {
		return err
	}
	idx := d.queue.Submit(cmd)
	cmd.Release()

	var m mapping
	if err := m.start(staging, size); err != nil {
		return err
	}
	d.wait(&idx, m.done)
	if err := m.err(); err != nil {
		return err
	}
	copy(dst, staging.GetMappedRange(0, uint(size))[:len(dst)])
	return staging.TryUnmap()
}

// mapping is a map of a staging buffer for reading, in flight. wgpu-native
// may run the callback on another thread (its callbacks are registered as
// "allow spontaneous"), so the status is atomic.
type mapping struct{ status atomic.Uint32 }

func (m *mapping) start(b *wgpu.Buffer, size uint64) error {
	return b.TryMapAsync(wgpu.MapModeRead, 0, size, func(s wgpu.MapAsyncStatus) { m.status.Store(uint32(s)) })
}

// done reports whether the callback has run; no status is zero.
func (m *mapping) done() bool { return m.status.Load() != 0 }

func (m *mapping) err() error {
	if s := wgpu.MapAsyncStatus(m.status.Load()); s != wgpu.MapAsyncStatusSuccess {
		return fmt.Errorf("mapping the staging buffer failed: %s", s)
	}
	return nil
}

// Sync waits until all submitted work has finished.
func (d *Device) Sync() {
	var done atomic.Bool
	d.queue.OnSubmittedWorkDone(func(wgpu.QueueWorkDoneStatus) { done.Store(true) })
	d.wait(nil, done.Load)
}

// wait blocks in wgpu-native until the submission index names (all
// submitted work when nil) has finished, and again until done reports true:
// callbacks run during a poll once the work they wait on is complete. A
// blocking poll waits as long as the work takes (TestLongSubmission) and
// wakes when it is done, not at the next step of a backed-off poll.
func (d *Device) wait(index *wgpu.SubmissionIndex, done func() bool) {
	if done() {
		return
	}
	span := d.Trace().Begin("wait")
	for !done() {
		d.device.Poll(true, (*uint64)(index))
	}
	span.End()
}
