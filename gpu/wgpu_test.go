package gpu

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/oliverbestmann/webgpu/wgpu"

	"github.com/bt-org/bt/shaders"
)

// These tests reach below bt's own checks to record what wgpu-native 29
// does with invalid work: which mistakes come back as errors, and which
// still end the process, so that bt's checks before those calls stay.

var (
	internalOnce sync.Once
	internalDev  *Device
	internalErr  error
)

// device opens the adapter once for this file's tests; gputest cannot be
// imported here, since it imports this package.
func device(t *testing.T) *Device {
	t.Helper()
	internalOnce.Do(func() { internalDev, internalErr = Open(Options{}) })
	if internalErr != nil {
		t.Fatalf("no device to test on: %v", internalErr)
	}
	return internalDev
}

// fillKernel is a kernel with one storage binding after its parameters.
func fillKernel(t *testing.T, d *Device) *Kernel {
	t.Helper()
	k, err := d.Kernel("elementwise", shaders.Elementwise{Expr: "p.alpha", Threads: shaders.Threads{WG: elementwiseWG}, E: 1})
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func buffer(t *testing.T, d *Device, size uint64, usage wgpu.BufferUsage) *wgpu.Buffer {
	t.Helper()
	b, err := d.pool.get(size, usage)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.pool.put(b, size, usage) })
	return b
}

// finish ends enc and returns Finish's error: wgpu defers the validation of
// recorded commands to it.
func finish(d *Device, enc *wgpu.CommandEncoder, record func() error) error {
	if err := record(); err != nil {
		return err
	}
	cmd, err := enc.TryFinish(nil)
	if err == nil {
		cmd.Release()
	}
	return err
}

// TestWgpuErrors checks that wgpu-native 29 hands validation errors back
// through the binding's Try… calls, where 0.17 aborted the process.
func TestWgpuErrors(t *testing.T) {
	d := device(t)
	k := fillKernel(t, d)
	storage := buffer(t, d, 256, storageUsage)
	small := buffer(t, d, 16, storageUsage)
	params := buffer(t, d, uniformChunkSize, uniformUsage)
	staging := buffer(t, d, 256, stagingUsage)
	encoder := func() *wgpu.CommandEncoder {
		enc, err := d.device.TryCreateCommandEncoder(nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(enc.Release)
		return enc
	}
	cases := []struct {
		name, want string
		run        func() error
	}{
		{"WGSL syntax", "parsing error", func() error { return d.compile(&Kernel{Name: "broken"}, "fn main( {") }},
		{"buffer beyond the limit", "maximum buffer size", func() error {
			_, err := d.device.TryCreateBuffer(&wgpu.BufferDescriptor{Size: d.Limits.MaxBufferSize + 4, Usage: storageUsage})
			return err
		}},
		{"write past a buffer's end", "overrunning the bounds", func() error { return d.queue.TryWriteBuffer(small, 0, make([]byte, 64)) }},
		{"copy past a buffer's end", "overrunning the bounds", func() error {
			enc := encoder()
			return finish(d, enc, func() error { return enc.TryCopyBufferToBuffer(storage, 0, small, 0, 256) })
		}},
		{"bind group missing a binding", "number of bindings", func() error {
			_, err := d.device.TryCreateBindGroup(&wgpu.BindGroupDescriptor{Layout: k.layout,
				Entries: []wgpu.BindGroupEntry{{Binding: 0, Buffer: params, Size: 16}}})
			return err
		}},
		{"dispatch beyond the grid limit", "dispatch group size", func() error {
			bg, err := d.device.TryCreateBindGroup(&wgpu.BindGroupDescriptor{Layout: k.layout, Entries: []wgpu.BindGroupEntry{
				{Binding: 0, Buffer: params, Size: 16}, {Binding: 1, Buffer: storage, Size: 256}}})
			if err != nil {
				return fmt.Errorf("the valid bind group: %w", err)
			}
			defer bg.Release()
			enc := encoder()
			return finish(d, enc, func() error {
				pass, err := beginPass(enc, nil)
				if err != nil {
					return err
				}
				defer pass.Release()
				pass.SetPipeline(k.pipeline)
				pass.SetBindGroup(0, bg, nil)
				pass.DispatchWorkgroups(d.Limits.MaxComputeWorkgroupsPerDimension+1, 1, 1)
				return pass.TryEnd()
			})
		}},
		{"map past a buffer's end", "out-of-bounds", func() error {
			return staging.TryMapAsync(wgpu.MapModeRead, 0, 4096, func(wgpu.MapAsyncStatus) {})
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			var werr wgpu.Error
			if !errors.As(err, &werr) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want wgpu's error containing %q", err, tc.want)
			}
		})
	}
	// The device is still usable after all of them.
	if err := d.Run(func(r *Recorder) error {
		x, err := d.NewTensor(4)
		if err != nil {
			return err
		}
		defer x.Release()
		return Fill(r, x, 1)
	}); err != nil {
		t.Fatal(err)
	}
	d.Sync()
}

// abortCases are mistakes that wgpu-native 29 still answers by aborting the
// process: a queue submit and GetMappedRange have no error to return, and
// an error there is fatal. Each names what in bt keeps it from happening.
var abortCases = []struct {
	name, want, guard string
	run               func(t *testing.T, d *Device)
}{
	{"submit with a destroyed buffer", "has been destroyed", "Trim waits for open recordings", func(t *testing.T, d *Device) {
		src, dst := buffer(t, d, 256, storageUsage), buffer(t, d, 256, storageUsage)
		cmd := copyCommand(t, d, src, dst)
		src.Destroy()
		d.queue.Submit(cmd)
	}},
	{"submit twice", "already been submitted", "a Recorder submits once", func(t *testing.T, d *Device) {
		cmd := copyCommand(t, d, buffer(t, d, 256, storageUsage), buffer(t, d, 256, storageUsage))
		d.queue.Submit(cmd)
		d.queue.Submit(cmd)
	}},
	{"submit with a mapped buffer", "still mapped", "staging buffers return to the pool unmapped", func(t *testing.T, d *Device) {
		src, staging := buffer(t, d, 256, storageUsage), buffer(t, d, 256, stagingUsage)
		var m mapping
		if err := m.start(staging, 256); err != nil {
			t.Fatal(err)
		}
		d.wait(nil, m.done)
		d.queue.Submit(copyCommand(t, d, src, staging))
	}},
	{"mapped range of an unmapped buffer", "not mapped", "GetMappedRange only after a successful map", func(t *testing.T, d *Device) {
		buffer(t, d, 256, stagingUsage).GetMappedRange(0, 256)
	}},
}

func copyCommand(t *testing.T, d *Device, src, dst *wgpu.Buffer) *wgpu.CommandBuffer {
	t.Helper()
	enc, err := d.device.TryCreateCommandEncoder(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Release()
	if err := enc.TryCopyBufferToBuffer(src, 0, dst, 0, 256); err != nil {
		t.Fatal(err)
	}
	cmd, err := enc.TryFinish(nil)
	if err != nil {
		t.Fatal(err)
	}
	return cmd
}

// TestWgpuAborts runs each abort case in a child process and checks that it
// still ends there with wgpu's message. Should one start to survive, the
// check that guards it in bt may be worth revisiting.
func TestWgpuAborts(t *testing.T) {
	if name := os.Getenv("BT_ABORT_CASE"); name != "" {
		for _, c := range abortCases {
			if c.name == name {
				d := device(t)
				c.run(t, d)
				d.wait(nil, func() bool { return true })
				fmt.Println("survived")
				return
			}
		}
		t.Fatalf("no abort case %q", name)
	}
	for _, c := range abortCases {
		t.Run(c.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestWgpuAborts$", "-test.count=1")
			cmd.Env = append(os.Environ(), "BT_ABORT_CASE="+c.name)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || !strings.Contains(string(out), "panicked") || !strings.Contains(string(out), c.want) {
				t.Fatalf("wgpu-native no longer aborts (exit %v); bt guards this with: %s. Output:\n%.2000s", err, c.guard, out)
			}
		})
	}
}

// TestTrimWaitsForRecording releases a recorded tensor and trims the pool
// before the recording is submitted: the buffer must outlive the submit,
// and the pool must be empty once it is done.
func TestTrimWaitsForRecording(t *testing.T) {
	d := device(t)
	x, err := d.NewTensor(300)
	if err != nil {
		t.Fatal(err)
	}
	y, err := d.NewTensor(300)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Release()
	r, err := d.Record(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := Fill(r, x, 5); err != nil {
		t.Fatal(err)
	}
	if err := r.Copy(y, x); err != nil {
		t.Fatal(err)
	}
	x.Release()
	d.Trim()
	if d.MemStats().Idle == 0 {
		t.Fatal("Trim freed the pool while a recording that uses it was open")
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if idle := d.MemStats().Idle; idle != 0 {
		t.Errorf("%d bytes still pooled after the recording was submitted", idle)
	}
	got, err := y.Download()
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 5 || got[299] != 5 {
		t.Errorf("copy through the trimmed buffer gave %v, %v; want 5", got[0], got[299])
	}
}
