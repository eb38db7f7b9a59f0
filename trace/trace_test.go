package trace_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/bt-org/bt/trace"
)

// roundTrip writes t and parses it back, as a viewer would.
func roundTrip(t *testing.T, tr *trace.Trace) trace.File {
	t.Helper()
	var b bytes.Buffer
	if _, err := tr.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	f, err := trace.Read(&b)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestNestedSpans(t *testing.T) {
	tr := trace.New()
	outer := tr.Begin("step", trace.Arg{Key: "step", Value: 3})
	inner := tr.Begin("record")
	time.Sleep(time.Millisecond)
	inner.End()
	tr.Begin("submit").End()
	outer.End()
	tr.SetActive(false)
	tr.Begin("ignored").End()
	f := roundTrip(t, tr)
	if err := trace.Check(f); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range f.TraceEvents {
		if e.Phase == "X" {
			names = append(names, e.Name)
			if e.TID != int(trace.Host) {
				t.Errorf("%s on track %d, want the host's", e.Name, e.TID)
			}
		}
	}
	if got := strings.Join(names, ","); got != "record,submit,step" {
		t.Errorf("spans %s, want record,submit,step (in the order they ended, none while inactive)", got)
	}
	for _, e := range f.TraceEvents {
		if e.Name == "step" && (e.Args["step"] != 3.0 || e.Dur < 1000) {
			t.Errorf("step span %+v: want args step 3 and at least 1000 µs", e)
		}
	}
}

func TestNilTraceRecordsNothing(t *testing.T) {
	var tr *trace.Trace
	tr.Begin("x").End()
	tr.Add(trace.Device, "k", 0, time.Microsecond)
	tr.SetActive(true)
	if tr.Active() || tr.Events() != nil {
		t.Error("a nil trace is active or holds events")
	}
}

// TestCheckFindsFaults feeds Check a well-formed trace and each of the
// faults it looks for.
func TestCheckFindsFaults(t *testing.T) {
	us := time.Microsecond
	sub := func(tr *trace.Trace) { tr.Async("submission", 7, 10*us, 50*us) }
	cases := []struct {
		name  string
		build func(tr *trace.Trace)
		want  string // "" for a well-formed trace
	}{
		{"well formed", func(tr *trace.Trace) {
			sub(tr)
			tr.Add(trace.Host, "step", 0, 100*us)
			tr.Add(trace.Host, "submit", 5*us, 5*us)
			tr.Add(trace.Host, "wait", 20*us, 80*us)
			tr.Add(trace.Device, "gemm", 12*us, 30*us, trace.Arg{Key: "submission", Value: 7})
		}, ""},
		{"overlap", func(tr *trace.Trace) {
			tr.Add(trace.Host, "a", 0, 10*us)
			tr.Add(trace.Host, "b", 5*us, 10*us)
		}, "without nesting"},
		{"outside", func(tr *trace.Trace) {
			sub(tr)
			tr.Add(trace.Device, "gemm", 40*us, 20*us, trace.Arg{Key: "submission", Value: 7})
		}, "outside its submission"},
		{"unnamed", func(tr *trace.Trace) {
			tr.Add(trace.Device, "gemm", 40*us, 20*us)
		}, "names no submission"},
		{"missing", func(tr *trace.Trace) {
			tr.Add(trace.Device, "gemm", 40*us, 20*us, trace.Arg{Key: "submission", Value: 2})
		}, "lacks or never ends"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			tr := trace.New()
			c.build(tr)
			err := trace.Check(roundTrip(t, tr))
			switch {
			case c.want == "" && err != nil:
				t.Fatal(err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Fatalf("Check = %v, want an error containing %q", err, c.want)
			}
		})
	}
}

func TestParseWindow(t *testing.T) {
	for _, c := range []struct {
		in   string
		want trace.Window
		ok   bool
	}{
		{"2:5", trace.Window{From: 2, To: 5}, true},
		{"0:1", trace.Window{From: 0, To: 1}, true},
		{"5:5", trace.Window{}, false},
		{"-1:3", trace.Window{}, false},
		{"3", trace.Window{}, false},
		{"a:b", trace.Window{}, false},
	} {
		w, err := trace.ParseWindow(c.in)
		if (err == nil) != c.ok || w != c.want {
			t.Errorf("ParseWindow(%q) = %v, %v; want %v, ok %v", c.in, w, err, c.want, c.ok)
		}
	}
	w := trace.Window{From: 2, To: 4}
	if w.Contains(1) || !w.Contains(2) || !w.Contains(3) || w.Contains(4) || !(trace.Window{}).Contains(99) {
		t.Errorf("%v.Contains is wrong at its edges, or the zero window is not every step", w)
	}
}
