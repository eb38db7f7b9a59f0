package gpu_test

import (
	"github.com/x448/float16"

	"fmt"
	"math"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
)

func TestReport(t *testing.T) {
	d := gputest.Device(t)
	rep := d.Report()
	for _, want := range []string{d.Info.Name, "storage binding", "workgroup storage"} {
		if !strings.Contains(rep, want) {
			t.Errorf("report lacks %q:\n%s", want, rep)
		}
	}
	// Whether mixed precision is available, as the device says.
	if want := map[bool]string{true: "mixed precision available", false: "f32 only"}[d.F16]; !strings.Contains(rep, want) {
		t.Errorf("report lacks %q (F16 %v):\n%s", want, d.F16, rep)
	}
	// The device must carry the adapter's own binding limit, not WebGPU's
	// 128 MiB default, wherever the adapter offers more.
	if d.Limits.MaxStorageBufferBindingSize < 128<<20 {
		t.Errorf("storage binding limit %d below the WebGPU default", d.Limits.MaxStorageBufferBindingSize)
	}
}

func TestOpenBadAdapter(t *testing.T) {
	for _, sel := range []string{"99", "-1", "no-such-adapter-name"} {
		d, err := gpu.Open(gpu.Options{Adapter: sel})
		if err == nil {
			d.Release()
			t.Fatalf("Open(%q) succeeded", sel)
		}
		if !strings.Contains(err.Error(), "adapter") {
			t.Errorf("Open(%q): error %q does not name the problem", sel, err)
		}
	}
}

func TestOpenByNameAndIndex(t *testing.T) {
	infos, err := gpu.Adapters()
	if err != nil {
		t.Fatal(err)
	}
	first := infos[0]
	for _, sel := range []string{"0", strings.ToUpper(first.Name[:3])} {
		d, err := gpu.Open(gpu.Options{Adapter: sel})
		if err != nil {
			t.Fatalf("Open(%q): %v", sel, err)
		}
		if !strings.EqualFold(d.Info.Name[:3], first.Name[:3]) {
			t.Errorf("Open(%q) opened %s", sel, d.Info)
		}
		d.Release()
	}
}

// TestSubmitCopyMapRegression repeats the pattern that crashed lavapipe's
// worker thread in a probe: several dispatches in one submit, then a copy to
// a mappable buffer in a new submit and a map, many times over.
func TestSubmitCopyMapRegression(t *testing.T) {
	d := gputest.Device(t)
	x, err := d.NewTensor(1000)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release()
	y, err := d.NewTensor(1000)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Release()
	if err := d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, y, 2) }); err != nil {
		t.Fatal(err)
	}
	for iter := range 50 {
		err := d.Run(func(r *gpu.Recorder) error {
			if err := gpu.Fill(r, x, 1); err != nil {
				return err
			}
			for range 4 {
				if err := gpu.Axpy(r, x, y, 1); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		got, err := x.Download()
		if err != nil {
			t.Fatal(err)
		}
		if got[0] != 9 || got[999] != 9 {
			t.Fatalf("iteration %d: got %v and %v, want 9", iter, got[0], got[999])
		}
	}
}

// TestGridSplit covers more than 65,535 workgroups of 256, which must be
// spread over two grid dimensions.
func TestGridSplit(t *testing.T) {
	d := gputest.Device(t)
	n := 65535*256 + 300
	y, err := d.NewTensor(n)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Release()
	if err := y.Upload(nanSlice(n)); err != nil {
		t.Fatal(err)
	}
	if err := d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, y, 3) }); err != nil {
		t.Fatal(err)
	}
	got, err := y.Download()
	if err != nil {
		t.Fatal(err)
	}
	for i, v := range got {
		if v != 3 {
			t.Fatalf("element %d of %d is %v, want 3", i, n, v)
		}
	}
}

func nanSlice(n int) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(math.NaN())
	}
	return v
}

// TestValidation checks that mistakes come back as errors that say what
// was wrong in bt's terms, before they reach wgpu-native.
func TestValidation(t *testing.T) {
	d := gputest.Device(t)
	a, _ := d.NewTensor(4, 5)
	b, _ := d.NewTensor(5, 6)
	c, _ := d.NewTensor(4, 6)
	small, _ := d.NewTensor(3)
	released, _ := d.NewTensor(3)
	released.Release()
	defer func() {
		for _, x := range []*gpu.Tensor{a, b, c, small} {
			x.Release()
		}
	}()
	cases := []struct {
		name string
		want string
		run  func(r *gpu.Recorder) error
	}{
		{"gemm shape", "needs 30 elements", func(r *gpu.Recorder) error {
			return gpu.Gemm(r, c, a, a, gpu.GemmOp{M: 4, N: 6, K: 5, Alpha: 1})
		}},
		{"gemm zero size", "must be ≥ 1", func(r *gpu.Recorder) error {
			return gpu.Gemm(r, c, a, b, gpu.GemmOp{M: 0, N: 6, K: 5, Alpha: 1})
		}},
		{"gemm tile", "multiples of 4", func(r *gpu.Recorder) error {
			return gpu.Gemm(r, c, a, b, gpu.GemmOp{M: 4, N: 6, K: 5, Alpha: 1, Tile: gpu.GemmTile{BM: 6, BN: 8, BK: 4, TM: 3, TN: 4}})
		}},
		{"gemm workgroup memory", "workgroup memory", func(r *gpu.Recorder) error {
			return gpu.Gemm(r, c, a, b, gpu.GemmOp{M: 4, N: 6, K: 5, Alpha: 1, Tile: gpu.GemmTile{BM: 64, BN: 64, BK: 4096, TM: 8, TN: 8}})
		}},
		{"gemm output aliases input", "same tensor", func(r *gpu.Recorder) error {
			x, _ := d.NewTensor(4, 4)
			defer x.Release()
			return gpu.Gemm(r, x, x, x, gpu.GemmOp{M: 4, N: 4, K: 4, Alpha: 1})
		}},
		{"elementwise length", "same number of elements", func(r *gpu.Recorder) error { return gpu.Add(r, c, a, b) }},
		{"released tensor", "released", func(r *gpu.Recorder) error { return gpu.ReLU(r, small, released) }},
		{"reduce view", "multiply to", func(r *gpu.Recorder) error { return gpu.Reduce(r, small, a, 3, 3, 3, gpu.Sum) }},
		{"reduce output", "must have 5 elements", func(r *gpu.Recorder) error { return gpu.Reduce(r, small, a, 4, 5, 1, gpu.Sum) }},
		{"reduce op", "unknown reduction", func(r *gpu.Recorder) error { return gpu.Reduce(r, b, a, 4, 5, 1, "max") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Run(tc.run)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one containing %q", err, tc.want)
			}
		})
	}

	if _, err := d.NewTensor(0, 3); err == nil {
		t.Error("NewTensor(0, 3) succeeded")
	}
	huge := int(d.Limits.MaxStorageBufferBindingSize/4) + 1
	if x, err := d.NewTensor(huge); err == nil || !strings.Contains(err.Error(), "binds at most") {
		x.Release()
		t.Errorf("NewTensor beyond the binding limit: %v", err)
	}
	if err := small.Upload(make([]float32, 4)); err == nil {
		t.Error("upload of the wrong length succeeded")
	}
	if _, err := a.Reshape(7); err == nil {
		t.Error("reshape to another element count succeeded")
	}
	r, err := d.Record(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if err := gpu.Fill(r, small, 1); err == nil || !strings.Contains(err.Error(), "already submitted") {
		t.Errorf("use after submit: %v", err)
	}
}

// TestPoolReuse checks that repeating a step allocates no new buffers.
func TestPoolReuse(t *testing.T) {
	d := gputest.Device(t)
	step := func() {
		x, _ := d.NewTensor(17, 33)
		y, _ := d.NewTensor(17, 33)
		if err := d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, x, 1) }); err != nil {
			t.Fatal(err)
		}
		if _, err := y.Download(); err != nil {
			t.Fatal(err)
		}
		x.Release()
		y.Release()
	}
	step()
	before := d.MemStats()
	for range 5 {
		step()
	}
	after := d.MemStats()
	if after.Buffers != before.Buffers {
		t.Errorf("steps after the first created %d buffers", after.Buffers-before.Buffers)
	}
	if after.Live != before.Live {
		t.Errorf("live bytes went from %d to %d", before.Live, after.Live)
	}
}

func TestTimings(t *testing.T) {
	d := gputest.Device(t)
	if !d.HasTimestamps() {
		t.Fatalf("%s lacks timestamp queries; per-kernel timing is part of what bt needs from its CI adapter", d.Info.Name)
	}
	a, _ := d.NewTensor(64, 64)
	defer a.Release()
	c, _ := d.NewTensor(64, 64)
	defer c.Release()
	r, err := d.Record(true)
	if err != nil {
		t.Fatal(err)
	}
	if err := gpu.Fill(r, a, 1); err != nil {
		t.Fatal(err)
	}
	if err := gpu.Gemm(r, c, a, a2(t, d, r), gpu.GemmOp{M: 64, N: 64, K: 64, Alpha: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	ts, err := r.Timings()
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != 3 {
		t.Fatalf("got %d timings, want 3", len(ts))
	}
	if !strings.HasPrefix(ts[2].Kernel, "gemm_staged{") {
		t.Errorf("third kernel is %q", ts[2].Kernel)
	}
	for _, x := range ts {
		if !(x.Nanos > 0) || x.Nanos > 60e9 {
			t.Errorf("%s took %v ns", x.Kernel, x.Nanos)
		}
	}
}

// a2 returns a fresh 64×64 tensor of twos recorded in r.
func a2(t *testing.T, d *gpu.Device, r *gpu.Recorder) *gpu.Tensor {
	b, err := d.NewTensor(64, 64)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Release)
	if err := gpu.Fill(r, b, 2); err != nil {
		t.Fatal(err)
	}
	return b
}

// TestLongSubmission covers a submission that runs longer than the five
// seconds after which wgpu-native 0.17 abandoned a blocking wait; lavapipe
// then crashed in its queue thread on the next submission (seen with
// ResNet-sized convolutions). bt's waits block in wgpu-native 29: Sync must
// last as long as the work, and the device must work afterwards. The
// recording repeats a GEMM until it takes about eight seconds on this
// adapter, then another kernel runs.
func TestLongSubmission(t *testing.T) {
	d := gputest.Device(t)
	const n = 256
	a, _ := d.NewTensor(n, n)
	c, _ := d.NewTensor(n, n)
	y, _ := d.NewTensor(3)
	defer a.Release()
	defer c.Release()
	defer y.Release()
	gemms := func(reps int) error {
		err := d.Run(func(r *gpu.Recorder) error {
			if err := gpu.Fill(r, a, 1.0/n); err != nil {
				return err
			}
			for range reps {
				if err := gpu.Gemm(r, c, a, a, gpu.GemmOp{M: n, N: n, K: n, Alpha: 1}); err != nil {
					return err
				}
			}
			return nil
		})
		d.Sync()
		return err
	}
	if err := gemms(1); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if err := gemms(10); err != nil {
		t.Fatal(err)
	}
	reps := int(8*time.Second/max(time.Since(start)/10, time.Microsecond)) + 1
	start = time.Now()
	if err := gemms(reps); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d GEMMs in one submission took %v", reps, time.Since(start))
	if err := d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, y, 4) }); err != nil {
		t.Fatal(err)
	}
	got, err := y.Download()
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.Download()
	if err != nil {
		t.Fatal(err)
	}
	if got[2] != 4 || math.Abs(float64(want[0])-1.0/n) > 1e-6 {
		t.Fatalf("after the long submission: fill %v, gemm %v", got[2], want[0])
	}
}

// TestReadback reads values from several submitted steps without waiting
// for each, as the trainer does with its losses.
func TestReadback(t *testing.T) {
	d := gputest.Device(t)
	x, _ := d.NewTensor(5)
	defer x.Release()
	var pending []*gpu.Readback
	for step := range 4 {
		r, err := d.Record(false)
		if err != nil {
			t.Fatal(err)
		}
		if err := gpu.Fill(r, x, float32(step)); err != nil {
			t.Fatal(err)
		}
		rb, err := r.Readback(x)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rb.Ready(); err == nil {
			t.Fatal("Ready before Submit gave no error")
		}
		if err := r.Submit(); err != nil {
			t.Fatal(err)
		}
		pending = append(pending, rb)
	}
	for step, rb := range pending {
		got, err := rb.Wait()
		if err != nil {
			t.Fatal(err)
		}
		if got[4] != float32(step) {
			t.Errorf("step %d read %v", step, got)
		}
		if _, err := rb.Wait(); err == nil {
			t.Error("a second Wait gave no error")
		}
	}
}

// TestRecorderSync: work recorded before a Sync has run when its function
// reads, and what the function uploads is what the work recorded after it
// sees, within one recording.
func TestRecorderSync(t *testing.T) {
	d := gputest.Device(t)
	x, err := d.NewTensor(5)
	if err != nil {
		t.Fatal(err)
	}
	defer x.Release()
	y, err := d.NewTensor(5)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Release()
	var seen []float32
	err = d.Run(func(r *gpu.Recorder) error {
		if err := gpu.Fill(r, x, 3); err != nil {
			return err
		}
		if err := r.Sync(func() error {
			v, err := x.Download()
			if err != nil {
				return err
			}
			seen = append([]float32(nil), v...)
			for i := range v {
				v[i] += float32(i)
			}
			return x.Upload(v)
		}); err != nil {
			return err
		}
		return gpu.Scale(r, y, x, 2)
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := y.Download()
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if seen[i] != 3 || got[i] != 2*(3+float32(i)) {
			t.Fatalf("element %d: the sync saw %v and the work after it made %v; want 3 and %v", i, seen[i], got[i], 2*(3+float32(i)))
		}
	}
}

// TestSubgroups: the device asks for subgroups where the adapter has them
// (lavapipe does), reports them with the size a probe kernel runs with, and
// Options.NoSubgroups leaves them off.
func TestSubgroups(t *testing.T) {
	d := gputest.Device(t)
	if gputest.IsLavapipe(d) && os.Getenv("BT_NO_SUBGROUPS") == "" && !d.Subgroups {
		t.Fatalf("%s offers subgroups, but the device has none", d.Info)
	}
	if d.Subgroups {
		lo, hi, err := d.SubgroupSize()
		if err != nil {
			t.Fatal(err)
		}
		// WebGPU bounds subgroup sizes to powers of two from 4 to 128.
		for _, s := range []int{lo, hi} {
			if s < 4 || s > 128 || s&(s-1) != 0 {
				t.Errorf("subgroup size %d is not a power of two in [4, 128]", s)
			}
		}
		if want := fmt.Sprintf("subgroups on, %d", lo); !strings.Contains(d.Report(), want) {
			t.Errorf("report lacks %q:\n%s", want, d.Report())
		}
	}
	off, err := gpu.Open(gpu.Options{NoSubgroups: true})
	if err != nil {
		t.Fatal(err)
	}
	defer off.Release()
	if off.Subgroups {
		t.Error("NoSubgroups left subgroups on")
	}
	if _, _, err := off.SubgroupSize(); err == nil {
		t.Error("SubgroupSize without subgroups gave no error")
	}
	if rep := off.Report(); !strings.Contains(rep, "subgroups off") && !strings.Contains(rep, "subgroups none") {
		t.Errorf("report does not say subgroups are off:\n%s", rep)
	}
}

// TestHalfTensors: f16 tensors hold their values rounded to f16 and come
// back as float32, at lengths that do not fill a 4-byte word; kernels
// declared for f32 (a reduction's output) refuse them, as do copies into f32 and in-flight
// readbacks.
func TestHalfTensors(t *testing.T) {
	d := gputest.Device(t)
	gputest.NeedF16(t, d)
	rng := gputest.Rand(t)
	for _, n := range []int{1, 3, 17, 129} {
		v := make([]float32, n)
		for i := range v {
			v[i] = float32(rng.NormFloat64() * 100)
		}
		x, err := d.NewTensorOf(gpu.F16, n)
		if err != nil {
			t.Fatal(err)
		}
		defer x.Release()
		if err := x.Upload(v); err != nil {
			t.Fatal(err)
		}
		got, err := x.Download()
		if err != nil {
			t.Fatal(err)
		}
		for i := range v {
			if want := float16.Fromfloat32(v[i]).Float32(); got[i] != want {
				t.Fatalf("length %d: element %d is %v, want %v (%v rounded to f16)", n, i, got[i], want, v[i])
			}
		}
		if x.Bytes() != uint64((2*n+15)&^15) {
			t.Errorf("length %d: %d bytes, want %d", n, x.Bytes(), (2*n+15)&^15)
		}
	}
	h, err := d.NewTensorOf(gpu.F16, 8)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	f, err := d.NewTensor(8)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Release()
	for name, rec := range map[string]func(r *gpu.Recorder) error{
		"Reduce":   func(r *gpu.Recorder) error { return gpu.Reduce(r, h, f, 1, 8, 1, gpu.Sum) },
		"Copy":     func(r *gpu.Recorder) error { return r.Copy(f, h) },
		"Readback": func(r *gpu.Recorder) error { _, err := r.Readback(h); return err },
	} {
		err := d.Run(rec)
		if err == nil || !strings.Contains(err.Error(), "f16") {
			t.Errorf("%s with an f16 tensor where f32 is wanted: %v, want an error naming f16", name, err)
		}
	}
}

// TestResetPeak: after Trim and ResetPeak the pool's peak is what later
// work holds at most, not an earlier high-water mark.
func TestResetPeak(t *testing.T) {
	d := gputest.Device(t)
	big, err := d.NewTensor(1 << 20)
	if err != nil {
		t.Fatal(err)
	}
	big.Release()
	d.Trim()
	d.ResetPeak()
	small, err := d.NewTensor(1024)
	if err != nil {
		t.Fatal(err)
	}
	defer small.Release()
	if m := d.MemStats(); m.Peak >= 4<<20 || m.Peak < 4096 {
		t.Errorf("peak %d bytes after a 4 MiB tensor was freed, trimmed and the peak reset, then 4 KiB allocated", m.Peak)
	}
}
