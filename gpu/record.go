package gpu

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/oliverbestmann/webgpu/wgpu"
)

// Params is a kernel's uniform block: 32-bit words in the order of the
// kernel's WGSL struct Params. Each word keeps the kind it was packed as, so
// that Dispatch can check the words against the struct's fields: a word
// missing from the end would otherwise read as 0 on the device.
type Params struct {
	words []uint32
	kinds []scalar
	cost  cost
}

// cost is a dispatch's work as its kernel states it: FLOPs and minimal
// traffic (inputs read once, outputs written once), for profiles.
type cost struct{ flops, bytes float64 }

// Cost states the dispatch's FLOPs and its minimal memory traffic in bytes
// (every input read once, every output written once), which a profile
// (Timing) reports beside its time. It adds no word to the block.
func (p Params) Cost(flops, bytes float64) Params {
	p.cost = cost{flops, bytes}
	return p
}

// U appends an unsigned integer, for a u32 field.
func (p Params) U(v int) Params { return p.add(uint32(v), u32) }

// I appends a signed integer, for an i32 field.
func (p Params) I(v int) Params { return p.add(uint32(int32(v)), i32) }

// F appends a float, for an f32 field.
func (p Params) F(v float32) Params { return p.add(math.Float32bits(v), f32) }

func (p Params) add(w uint32, k scalar) Params {
	p.words = append(p.words, w)
	p.kinds = append(p.kinds, k)
	return p
}

// uniformChunk holds the parameter blocks of many dispatches, uploaded in one
// write at submit time so that recording a dispatch allocates no buffer.
type uniformChunk struct {
	buf  *wgpu.Buffer
	data []byte
}

const uniformChunkSize = 64 << 10

// Timing is the device time one dispatch took, and the FLOPs and minimal
// traffic in bytes its kernel stated (Params.Cost; zero where it states
// none).
type Timing struct {
	Kernel       string
	Nanos        float64
	Flops, Bytes float64
}

// Recorder records many dispatches and copies into one command buffer, which
// Submit hands to the queue at once. A Recorder is used once.
type Recorder struct {
	d      *Device
	enc    *wgpu.CommandEncoder
	pass   *wgpu.ComputePassEncoder
	groups []*wgpu.BindGroup // created for this recording alone (not kept by the device)
	chunks []*uniformChunk
	done   bool
	index  wgpu.SubmissionIndex // set by Submit; what readbacks wait for

	profile bool // every dispatch timed: Record(true), or a trace
	traced  bool // for the trace: past maxTimedDispatches, run untimed
	untimed int
	sent    time.Duration // on the trace's axis: the first part submitted (Sync), or 0
	queries *wgpu.QuerySet
	names   []string
	costs   []cost
	resolve *wgpu.Buffer
	resSize uint64
	staging *wgpu.Buffer // a traced recording's timestamps, mappable
}

// maxTimedDispatches bounds one profiled recording: two timestamps each,
// within the 4096 queries that wgpu allows in a set (the binding's
// QuerySetMaxQueries still says 8192, wgpu 0.17's figure).
const maxTimedDispatches = 4096 / 2

// Record starts a recording. With profile set, and where the adapter has
// timestamp queries, every dispatch is timed on the device; Timings reads the
// figures after Submit. While the device's trace is active (SetTrace), a
// recording is timed for the trace instead.
func (d *Device) Record(profile bool) (*Recorder, error) {
	enc, err := d.device.TryCreateCommandEncoder(nil)
	if err != nil {
		return nil, fmt.Errorf("gpu: creating a command encoder: %w", err)
	}
	traced := !profile && d.traced()
	r := &Recorder{d: d, enc: enc, profile: (profile || traced) && d.timestamp, traced: traced}
	if r.profile {
		r.queries, err = d.device.TryCreateQuerySet(&wgpu.QuerySetDescriptor{Type: wgpu.QueryTypeTimestamp, Count: 2 * maxTimedDispatches})
		if err != nil {
			enc.Release()
			return nil, fmt.Errorf("gpu: creating a timestamp query set: %w", err)
		}
	}
	d.open++
	return r, nil
}

func (r *Recorder) usable() error {
	if r.done {
		return errors.New("gpu: recorder already submitted or discarded; start a new one with Device.Record")
	}
	return nil
}

// Dispatch records kernel k over a grid of workgroups with the given
// parameters and storage buffers (in binding order).
func (r *Recorder) Dispatch(k *Kernel, grid [3]int, params Params, bufs ...*Tensor) error {
	if err := r.usable(); err != nil {
		return err
	}
	if err := k.checkParams(params); err != nil {
		return err
	}
	if len(bufs) != len(k.writable) {
		return fmt.Errorf("gpu: kernel %s binds %d storage buffers, got %d", k.Name, len(k.writable), len(bufs))
	}
	for i, t := range bufs {
		if err := t.check(); err != nil {
			return fmt.Errorf("%v (kernel %s, binding %d)", err, k.Name, i+1)
		}
		if t.dev != r.d {
			return fmt.Errorf("gpu: kernel %s, binding %d: tensor belongs to another device", k.Name, i+1)
		}
		// Bytes of one type read as another would be garbage, not an error.
		if (t.DType == F16) != k.half[i] {
			return fmt.Errorf("gpu: kernel %s, binding %d: %v does not match the kernel's element type", k.Name, i+1, t)
		}
		for j := range i {
			if bufs[j].buf == t.buf && (k.writable[i] || k.writable[j]) {
				return fmt.Errorf("gpu: kernel %s binds the same tensor at %d and %d while writing one of them; use separate tensors", k.Name, j+1, i+1)
			}
		}
	}
	maxWG := int(r.d.Limits.MaxComputeWorkgroupsPerDimension)
	for i, g := range grid {
		if g < 1 || g > maxWG {
			return fmt.Errorf("gpu: kernel %s dispatched with %d workgroups in dimension %d; the adapter allows 1 to %d", k.Name, g, i, maxWG)
		}
	}
	if r.profile && !r.traced && len(r.names) == maxTimedDispatches {
		return fmt.Errorf("gpu: a profiled recording holds at most %d dispatches; submit and start another", maxTimedDispatches)
	}

	chunk, offset, size, err := r.uniform(params)
	if err != nil {
		return err
	}
	bg, kept, err := r.d.bindGroup(k, chunk.buf, offset, size, bufs)
	if err != nil {
		return err
	}
	if !kept {
		r.groups = append(r.groups, bg)
	}
	r.d.dispatches[k.shader]++

	if r.traced && len(r.names) == maxTimedDispatches {
		r.untimed++
	} else if r.profile {
		// A profiled dispatch has a pass of its own, whose start and end
		// the pass's timestamp writes record: WebGPU times passes, not
		// commands within one.
		q := uint32(2 * len(r.names))
		r.names = append(r.names, k.Name)
		r.costs = append(r.costs, params.cost)
		pass, err := beginPass(r.enc, &wgpu.ComputePassDescriptor{TimestampWrites: &wgpu.PassTimestampWrites{
			QuerySet: r.queries, BeginningOfPassWriteIndex: q, EndOfPassWriteIndex: q + 1}})
		if err != nil {
			return err
		}
		pass.SetPipeline(k.pipeline)
		pass.SetBindGroup(0, bg, nil)
		pass.DispatchWorkgroups(uint32(grid[0]), uint32(grid[1]), uint32(grid[2]))
		err = pass.TryEnd()
		pass.Release()
		if err != nil {
			return fmt.Errorf("gpu: kernel %s: %w", k.Name, err)
		}
		return nil
	}
	if r.pass == nil {
		if r.pass, err = beginPass(r.enc, nil); err != nil {
			return err
		}
	}
	r.pass.SetPipeline(k.pipeline)
	r.pass.SetBindGroup(0, bg, nil)
	r.pass.DispatchWorkgroups(uint32(grid[0]), uint32(grid[1]), uint32(grid[2]))
	return nil
}

// uniform places params in the current chunk, starting a new one when full.
func (r *Recorder) uniform(params Params) (*uniformChunk, uint64, uint64, error) {
	size := uint64(max(16, (len(params.words)*4+15)&^15))
	align := uint64(max(16, r.d.Limits.MinUniformBufferOffsetAlignment))
	var c *uniformChunk
	if n := len(r.chunks); n > 0 {
		c = r.chunks[n-1]
	}
	off := uint64(0)
	if c != nil {
		off = (uint64(len(c.data)) + align - 1) / align * align
	}
	if c == nil || off+size > uniformChunkSize {
		buf, err := r.d.pool.get(uniformChunkSize, uniformUsage)
		if err != nil {
			return nil, 0, 0, err
		}
		c = &uniformChunk{buf: buf, data: make([]byte, 0, uniformChunkSize)}
		r.chunks = append(r.chunks, c)
		off = 0
	}
	c.data = c.data[:off+size]
	clear(c.data[off:])
	for i, w := range params.words {
		*(*uint32)(unsafe.Pointer(&c.data[off+uint64(4*i)])) = w
	}
	return c, off, size, nil
}

// beginPass begins a compute pass. The binding has no error-returning form
// and panics where wgpu-native hands back no pass; that comes back as an
// error.
func beginPass(enc *wgpu.CommandEncoder, desc *wgpu.ComputePassDescriptor) (pass *wgpu.ComputePassEncoder, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gpu: beginning a compute pass: %v", r)
		}
	}()
	return enc.BeginComputePass(desc), nil
}

func (r *Recorder) endPass() error {
	if r.pass == nil {
		return nil
	}
	err := r.pass.TryEnd()
	r.pass.Release()
	r.pass = nil
	return err
}

// Copy records a copy of src into dst, which must have as many elements.
func (r *Recorder) Copy(dst, src *Tensor) error {
	if err := r.usable(); err != nil {
		return err
	}
	if err := dst.check(); err != nil {
		return err
	}
	if err := src.check(); err != nil {
		return err
	}
	if dst.n != src.n || dst.DType != src.DType {
		return fmt.Errorf("gpu: copy of %v into %v: element counts or types differ", src, dst)
	}
	if dst.buf == src.buf {
		return nil
	}
	if err := r.endPass(); err != nil {
		return err
	}
	return r.enc.TryCopyBufferToBuffer(src.buf, 0, dst.buf, 0, tensorBytes(src.n, src.DType))
}

// Submit ends the recording and queues it; it does not wait. The recorder
// cannot be used afterwards.
func (r *Recorder) Submit() error {
	if err := r.usable(); err != nil {
		return err
	}
	span := r.d.Trace().Begin("submit")
	defer span.End()
	defer r.cleanup()
	if err := r.endPass(); err != nil {
		return fmt.Errorf("gpu: ending the compute pass: %w", err)
	}
	if r.profile && len(r.names) > 0 {
		r.resSize = uint64(16 * len(r.names))
		var err error
		r.resolve, err = r.d.pool.get(r.resSize, resolveUsage)
		if err != nil {
			return err
		}
		if err := r.enc.TryResolveQuerySet(r.queries, 0, uint32(2*len(r.names)), r.resolve, 0); err != nil {
			return fmt.Errorf("gpu: resolving timestamps: %w", err)
		}
		if r.traced {
			// The trace maps the timestamps once they are there, without a
			// submission of its own: a resolved query set is not mappable.
			if r.staging, err = r.d.pool.get(r.resSize, stagingUsage); err != nil {
				return err
			}
			if err := r.enc.TryCopyBufferToBuffer(r.resolve, 0, r.staging, 0, r.resSize); err != nil {
				r.d.pool.put(r.staging, r.resSize, stagingUsage)
				r.staging = nil
				return fmt.Errorf("gpu: copying timestamps: %w", err)
			}
			r.d.pool.put(r.resolve, r.resSize, resolveUsage)
			r.resolve = nil
		}
	}
	cmd, err := r.enc.TryFinish(nil)
	if err != nil {
		return fmt.Errorf("gpu: finishing the command buffer: %w", err)
	}
	defer cmd.Release()
	for _, c := range r.chunks {
		if err := r.d.queue.TryWriteBuffer(c.buf, 0, c.data); err != nil {
			return fmt.Errorf("gpu: uploading kernel parameters: %w", err)
		}
	}
	r.mark()
	r.index = r.d.queue.Submit(cmd)
	if r.staging != nil {
		if err := r.d.submitted(r, r.sent); err != nil {
			return err
		}
	}
	return r.d.collect(false)
}

// Sync submits what has been recorded so far, waits until the device has
// run it, calls fn, and goes on recording into a new command buffer, which
// runs after whatever fn uploaded. fn may Download and Upload tensors: it is
// how a step run by several processes exchanges values half-way through
// (package dist). The device idles while fn runs, so a step syncs only
// where it must.
func (r *Recorder) Sync(fn func() error) error {
	if err := r.usable(); err != nil {
		return err
	}
	if err := r.endPass(); err != nil {
		return fmt.Errorf("gpu: ending the compute pass: %w", err)
	}
	cmd, err := r.enc.TryFinish(nil)
	if err != nil {
		return fmt.Errorf("gpu: finishing the command buffer: %w", err)
	}
	r.enc.Release()
	r.enc = nil
	// The uniform chunks are written whole again at the next submission;
	// the parameters already in them do not change, and the work that
	// reads them has finished by then.
	for _, c := range r.chunks {
		if err := r.d.queue.TryWriteBuffer(c.buf, 0, c.data); err != nil {
			cmd.Release()
			return fmt.Errorf("gpu: uploading kernel parameters: %w", err)
		}
	}
	r.mark()
	index := r.d.queue.Submit(cmd)
	cmd.Release()
	r.d.device.Poll(true, (*uint64)(&index))
	if r.enc, err = r.d.device.TryCreateCommandEncoder(nil); err != nil {
		return fmt.Errorf("gpu: creating a command encoder: %w", err)
	}
	return fn()
}

// mark notes when a traced recording's work first reaches the queue.
func (r *Recorder) mark() {
	if r.traced && r.sent == 0 {
		r.sent = r.d.Trace().Since(time.Now())
	}
}

// Discard abandons a recording that will not be submitted.
func (r *Recorder) Discard() {
	if r.done {
		return
	}
	r.endPass()
	r.cleanup()
}

func (r *Recorder) cleanup() {
	r.done = true
	for _, g := range r.groups {
		g.Release()
	}
	r.groups = nil
	for _, c := range r.chunks {
		r.d.pool.put(c.buf, uniformChunkSize, uniformUsage)
	}
	r.chunks = nil
	if r.enc != nil {
		r.enc.Release()
	}
	if r.queries != nil {
		r.queries.Release()
		r.queries = nil
	}
	if r.d.open--; r.d.open == 0 && r.d.trim {
		r.d.Trim()
	}
}

// Timings waits for the submitted work and returns the device time of every
// dispatch in recording order. It needs a profiled recorder on an adapter
// with timestamp queries.
func (r *Recorder) Timings() ([]Timing, error) {
	if !r.profile || r.traced {
		return nil, errors.New("gpu: recorder was not profiled, or the adapter lacks timestamp queries")
	}
	if r.resolve == nil {
		return nil, errors.New("gpu: Timings needs a submitted recording with at least one dispatch")
	}
	raw := make([]uint64, 2*len(r.names))
	err := r.d.read(r.resolve, 0, unsafe.Slice((*byte)(unsafe.Pointer(&raw[0])), len(raw)*8))
	r.d.pool.put(r.resolve, r.resSize, resolveUsage)
	r.resolve = nil
	if err != nil {
		return nil, fmt.Errorf("gpu: reading timestamps: %w", err)
	}
	// Timestamps count ticks of the queue's period, which is 1 ns on
	// lavapipe and NVIDIA but not on every adapter.
	period := float64(r.d.queue.GetTimestampPeriod())
	out := make([]Timing, len(r.names))
	for i, n := range r.names {
		out[i] = Timing{Kernel: n, Nanos: float64(raw[2*i+1]-raw[2*i]) * period, Flops: r.costs[i].flops, Bytes: r.costs[i].bytes}
	}
	return out, nil
}

// Run records with fn and submits, as one step.
func (d *Device) Run(fn func(r *Recorder) error) error {
	r, err := d.Record(false)
	if err != nil {
		return err
	}
	span := d.Trace().Begin("record")
	err = fn(r)
	span.End()
	if err != nil {
		r.Discard()
		return err
	}
	return r.Submit()
}

// Device is the device the recording is for.
func (r *Recorder) Device() *Device { return r.d }
