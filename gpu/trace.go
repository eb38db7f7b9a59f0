package gpu

import (
	"errors"
	"fmt"
	"math"
	"time"
	"unsafe"

	"github.com/bt-org/bt/trace"
	"github.com/oliverbestmann/webgpu/wgpu"
)

// tracer is a device's trace: while the trace is active, every recording
// is timed like a profiled one, and its timestamps are collected once the
// device has run it, without a wait of their own.
type tracer struct {
	t       *trace.Trace
	pending []*timedSubmission // submitted, timestamps not yet read
	done    []*timedSubmission // read, spans not yet added
	next    int                // the last submission's id
}

// timedSubmission is one traced submission's timestamps on their way back.
type timedSubmission struct {
	id        int
	names     []string     // the timed dispatches, in order
	untimed   int          // dispatches past maxTimedDispatches, run untimed
	staging   *wgpu.Buffer // the resolved timestamps, mappable
	size      uint64
	m         mapping
	index     wgpu.SubmissionIndex
	submitted time.Duration // on the trace's axis: just before the queue had it
	seen      time.Duration // when the host saw it finished
	raw       []uint64
}

// SetTrace makes d record into t: host spans of its uploads, submissions,
// waits and downloads, and, where the adapter has timestamp queries, the
// device time of every dispatch recorded while t is active. FlushTrace adds
// the device spans. nil stops tracing.
func (d *Device) SetTrace(t *trace.Trace) {
	if t == nil {
		d.tracer = nil
		return
	}
	d.tracer = &tracer{t: t}
}

// Trace is the trace d records into; nil when none. Its methods do nothing
// on nil, so callers trace unconditionally.
func (d *Device) Trace() *trace.Trace {
	if d.tracer == nil {
		return nil
	}
	return d.tracer.t
}

// traced reports whether a recording started now is timed for the trace.
func (d *Device) traced() bool { return d.tracer != nil && d.timestamp && d.tracer.t.Active() }

// submitted takes over a traced recording's resolved timestamps once its
// work is on the queue.
func (d *Device) submitted(r *Recorder, at time.Duration) error {
	tr := d.tracer
	tr.next++
	s := &timedSubmission{id: tr.next, names: r.names, untimed: r.untimed, staging: r.staging, size: r.resSize,
		index: r.index, submitted: at}
	r.staging = nil
	if err := s.m.start(s.staging, s.size); err != nil {
		d.pool.put(s.staging, s.size, stagingUsage)
		return fmt.Errorf("gpu: reading timestamps: %w", err)
	}
	tr.pending = append(tr.pending, s)
	return nil
}

// collect reads the timestamps of the traced submissions that have
// finished, in order; with block it waits for all of them.
func (d *Device) collect(block bool) error {
	tr := d.tracer
	if tr == nil || len(tr.pending) == 0 {
		return nil
	}
	if !block {
		d.device.Poll(false, nil)
	}
	var errs []error
	for len(tr.pending) > 0 {
		s := tr.pending[0]
		if !s.m.done() {
			if !block {
				break
			}
			d.wait(&s.index, s.m.done)
		}
		s.seen = tr.t.Since(time.Now())
		tr.pending = tr.pending[1:]
		if err := s.m.err(); err != nil {
			errs = append(errs, fmt.Errorf("gpu: reading timestamps: %w", err))
		} else {
			s.raw = make([]uint64, 2*len(s.names))
			copy(unsafe.Slice((*byte)(unsafe.Pointer(&s.raw[0])), len(s.raw)*8), s.staging.GetMappedRange(0, uint(s.size)))
			if err := s.staging.TryUnmap(); err != nil {
				errs = append(errs, err)
			}
			tr.done = append(tr.done, s)
		}
		d.pool.put(s.staging, s.size, stagingUsage)
		s.staging = nil
	}
	return errors.Join(errs...)
}

// FlushTrace waits for the traced work submitted so far and adds its
// device spans to the trace: every timed dispatch, named by its kernel,
// inside an async span of its submission that runs from just before the
// queue had it to when the host saw it finished.
//
// Device timestamps count ticks of the queue's period from an origin of
// the adapter's own; they are placed on the host's axis by one offset, the
// smallest that starts no submission's first dispatch before the host
// handed it over, which keeps the gaps between dispatches as the device
// measured them. A submission that would then end after the host saw it
// finished (clocks that drift apart) is moved back to end then.
func (d *Device) FlushTrace() error {
	tr := d.tracer
	if tr == nil {
		return nil
	}
	err := d.collect(true)
	period := float64(d.queue.GetTimestampPeriod())
	offset := math.Inf(-1)
	for _, s := range tr.done {
		if len(s.raw) > 0 {
			offset = max(offset, float64(s.submitted)-float64(s.raw[0])*period)
		}
	}
	for _, s := range tr.done {
		args := []trace.Arg{{Key: "dispatches", Value: len(s.names) + s.untimed}}
		if s.untimed > 0 {
			args = append(args, trace.Arg{Key: "untimed", Value: s.untimed})
		}
		tr.t.Async("submission", s.id, s.submitted, s.seen, args...)
		if len(s.raw) == 0 {
			continue
		}
		last := 0.0
		for i := range s.names {
			last = max(last, float64(s.raw[2*i+1])*period)
		}
		o := min(offset, float64(s.seen)-last)
		for i, name := range s.names {
			// Whole nanoseconds inside the exact span, so rounding
			// cannot move a dispatch outside its submission.
			start := time.Duration(math.Ceil(float64(s.raw[2*i])*period + o))
			end := time.Duration(math.Floor(float64(s.raw[2*i+1])*period + o))
			tr.t.Add(trace.Device, name, start, max(end-start, 0), trace.Arg{Key: "submission", Value: s.id})
		}
	}
	tr.done = nil
	return err
}
