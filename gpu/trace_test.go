package gpu_test

import (
	"bytes"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/trace"
)

// TestTrace traces a few submissions, one of them read back in flight,
// and checks the file: it parses, host spans nest, and every dispatch has
// a device span inside its submission, named by its kernel.
func TestTrace(t *testing.T) {
	d, err := gpu.Open(gpu.Options{})
	if err != nil {
		t.Fatalf("no device to test on: %v", err)
	}
	defer d.Release()
	if !d.HasTimestamps() {
		if gputest.IsLavapipe(d) {
			t.Fatalf("%s (lavapipe) has timestamp queries, but the device has none", d.Info)
		}
		t.Skipf("%s has no timestamp queries: no device spans to check", d.Info)
	}
	tr := trace.New()
	d.SetTrace(tr)
	a, _ := d.FromSlice(make([]float32, 17*65), 17, 65)
	b, _ := d.FromSlice(make([]float32, 65*3), 65, 3)
	c, err := d.NewTensor(17, 3)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Release()
	defer b.Release()
	defer c.Release()
	const runs = 3
	for i := range runs {
		if i == 2 {
			tr.SetActive(false) // outside the window: neither spans nor timing
		}
		if err := d.Run(func(r *gpu.Recorder) error {
			if err := gpu.Gemm(r, c, a, b, gpu.GemmOp{M: 17, N: 3, K: 65, Alpha: 1}); err != nil {
				return err
			}
			return gpu.Scale(r, c, c, 2)
		}); err != nil {
			t.Fatal(err)
		}
	}
	tr.SetActive(true)
	r, err := d.Record(false)
	if err != nil {
		t.Fatal(err)
	}
	if err := gpu.Fill(r, c, 1); err != nil {
		t.Fatal(err)
	}
	rb, err := r.Readback(c)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Submit(); err != nil {
		t.Fatal(err)
	}
	if _, err := rb.Wait(); err != nil {
		t.Fatal(err)
	}
	if err := d.FlushTrace(); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := tr.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	f, err := trace.Read(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if err := trace.Check(f); err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	perSub := map[float64]int{}
	for _, e := range f.TraceEvents {
		if e.Phase == "X" || e.Phase == "b" {
			count[e.Name]++
		}
		if e.Phase == "X" && e.TID == int(trace.Device) {
			perSub[e.Args["submission"].(float64)]++
		}
	}
	// Two traced runs of two dispatches (a GEMM may take more than one),
	// then the fill: three submissions.
	if count["submission"] != 3 || count["record"] != 2 || count["submit"] != 3 || count["readback"] != 1 {
		t.Errorf("spans %v: want 3 submissions, 2 records, 3 submits, 1 readback", count)
	}
	if len(perSub) != 3 || perSub[3] != 1 || perSub[1] < 2 || perSub[1] != perSub[2] {
		t.Errorf("device spans per submission %v: want ≥ 2 in each of the runs and 1 for the fill", perSub)
	}
	for _, e := range f.TraceEvents {
		if e.Phase == "X" && e.TID == int(trace.Device) && e.Name == "" {
			t.Errorf("device span without its kernel's name: %+v", e)
		}
	}
}
