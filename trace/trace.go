// Package trace records what a run spends its time on, the host's work and
// the device's on one time axis, and writes it in the Chrome trace-event
// format (JSON), which chrome://tracing and ui.perfetto.dev open.
//
// Host spans (Begin … End) come from the goroutine that drives the device
// and nest like the calls that make them. Device spans are added by package
// gpu from timestamp queries once the work has run (gpu.Device.FlushTrace);
// each belongs to a submission, drawn as an async span from the moment it
// was handed to the queue to the moment the host saw it finished.
//
// A nil *Trace records nothing, so code traces unconditionally; a Trace
// records only while it is active (SetActive), which is how a training loop
// traces a window of steps.
package trace

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Track is a row of the trace: a thread in the trace-event format.
type Track int

const (
	// Host is the goroutine that records and submits work.
	Host Track = 1
	// Device is the adapter's queue: one span per timed dispatch.
	Device Track = 2
)

var trackNames = map[Track]string{Host: "host", Device: "device"}

// Arg is a name and value shown with a span.
type Arg struct {
	Key   string
	Value any
}

// Event is one entry of the trace-event format: a complete span (Phase
// "X"), the beginning or end of an async span ("b", "e"), or metadata
// ("M"). Times are microseconds since the trace began.
type Event struct {
	Name  string         `json:"name"`
	Cat   string         `json:"cat,omitempty"`
	Phase string         `json:"ph"`
	TS    float64        `json:"ts"`
	Dur   float64        `json:"dur,omitempty"`
	PID   int            `json:"pid"`
	TID   int            `json:"tid"`
	ID    int            `json:"id,omitempty"`
	Args  map[string]any `json:"args,omitempty"`
}

// File is the JSON object a trace is written as.
type File struct {
	TraceEvents     []Event `json:"traceEvents"`
	DisplayTimeUnit string  `json:"displayTimeUnit"`
}

// Trace collects spans. Its methods are safe for concurrent use.
type Trace struct {
	start  time.Time
	mu     sync.Mutex
	active bool
	events []Event
}

// New starts an active trace; its time axis begins now.
func New() *Trace { return &Trace{start: time.Now(), active: true} }

// SetActive starts or stops recording new spans; spans already begun end
// as usual.
func (t *Trace) SetActive(on bool) {
	if t == nil {
		return
	}
	t.mu.Lock()
	t.active = on
	t.mu.Unlock()
}

// Active reports whether new spans are recorded.
func (t *Trace) Active() bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.active
}

// Since is the time elapsed on the trace's axis at host time at.
func (t *Trace) Since(at time.Time) time.Duration { return at.Sub(t.start) }

// Span is a host span in progress; End records it.
type Span struct {
	t     *Trace
	name  string
	start time.Time
	args  []Arg
}

// Begin starts a host span named name, recorded when it ends; nothing is
// recorded when t is nil or inactive.
func (t *Trace) Begin(name string, args ...Arg) Span {
	if !t.Active() {
		return Span{}
	}
	return Span{t: t, name: name, start: time.Now(), args: args}
}

// End records the span.
func (s Span) End() {
	if s.t == nil {
		return
	}
	s.t.Add(Host, s.name, s.t.Since(s.start), time.Since(s.start), s.args...)
}

// Add records a complete span on a track, start on the trace's axis,
// whether or not the trace is active: it is for spans measured before.
func (t *Trace) Add(track Track, name string, start, dur time.Duration, args ...Arg) {
	if t == nil {
		return
	}
	t.add(Event{Name: name, Phase: "X", TS: micros(start), Dur: micros(dur), PID: 1, TID: int(track), Args: argMap(args)})
}

// Async records a span of its own row (an async span in the format), such
// as a submission in flight, which overlaps the spans before and after it.
// id, from 1, tells spans of the same name apart.
func (t *Trace) Async(name string, id int, start, end time.Duration, args ...Arg) {
	if t == nil {
		return
	}
	m := argMap(args)
	t.add(Event{Name: name, Cat: name, Phase: "b", TS: micros(start), PID: 1, TID: int(Host), ID: id, Args: m})
	t.add(Event{Name: name, Cat: name, Phase: "e", TS: micros(end), PID: 1, TID: int(Host), ID: id})
}

func (t *Trace) add(e Event) {
	t.mu.Lock()
	t.events = append(t.events, e)
	t.mu.Unlock()
}

func micros(d time.Duration) float64 { return float64(d) / 1e3 }

func argMap(args []Arg) map[string]any {
	if len(args) == 0 {
		return nil
	}
	m := make(map[string]any, len(args))
	for _, a := range args {
		m[a.Key] = a.Value
	}
	return m
}

// Events returns a copy of the events recorded so far, with the tracks'
// names first.
func (t *Trace) Events() []Event {
	if t == nil {
		return nil
	}
	out := []Event{{Name: "process_name", Phase: "M", PID: 1, Args: map[string]any{"name": "bt"}}}
	for _, tr := range []Track{Host, Device} {
		out = append(out,
			Event{Name: "thread_name", Phase: "M", PID: 1, TID: int(tr), Args: map[string]any{"name": trackNames[tr]}},
			Event{Name: "thread_sort_index", Phase: "M", PID: 1, TID: int(tr), Args: map[string]any{"sort_index": int(tr)}})
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return append(out, t.events...)
}

// WriteTo writes the trace as one JSON object.
func (t *Trace) WriteTo(w io.Writer) (int64, error) {
	cw := &counter{w: w}
	bw := bufio.NewWriter(cw)
	if err := json.NewEncoder(bw).Encode(File{TraceEvents: t.Events(), DisplayTimeUnit: "ms"}); err != nil {
		return cw.n, fmt.Errorf("trace: %w", err)
	}
	err := bw.Flush()
	return cw.n, err
}

type counter struct {
	w io.Writer
	n int64
}

func (c *counter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// Check reports the first way in which f is not a well-formed trace of
// bt's: host spans that overlap without nesting, or a device span outside
// the submission it names (its "submission" argument), or naming none.
func Check(f File) error {
	type interval struct {
		name       string
		start, end float64
	}
	subs := map[int]*interval{}
	var host, dev []Event
	for _, e := range f.TraceEvents {
		switch {
		case e.Phase == "b" && e.Name == "submission":
			subs[e.ID] = &interval{name: e.Name, start: e.TS, end: -1}
		case e.Phase == "e" && e.Name == "submission":
			s, ok := subs[e.ID]
			if !ok || s.end >= 0 || e.TS < s.start {
				return fmt.Errorf("trace: submission %d ends at %.3f µs without beginning before", e.ID, e.TS)
			}
			s.end = e.TS
		case e.Phase == "X" && e.TID == int(Host):
			host = append(host, e)
		case e.Phase == "X" && e.TID == int(Device):
			dev = append(dev, e)
		case e.Phase == "X":
			return fmt.Errorf("trace: span %s on unknown track %d", e.Name, e.TID)
		}
	}
	// Sorted by start, longest first among equal starts, every span must
	// end within the innermost open span that contains its start.
	slices.SortStableFunc(host, func(a, b Event) int {
		if c := cmp.Compare(a.TS, b.TS); c != 0 {
			return c
		}
		return cmp.Compare(b.Dur, a.Dur)
	})
	const eps = 1e-3 // µs: rounding of the float64 microseconds
	var open []interval
	for _, e := range host {
		for len(open) > 0 && open[len(open)-1].end <= e.TS+eps {
			open = open[:len(open)-1]
		}
		if n := len(open); n > 0 && e.TS+e.Dur > open[n-1].end+eps {
			return fmt.Errorf("trace: host span %s [%.3f, %.3f] µs overlaps %s [%.3f, %.3f] without nesting in it",
				e.Name, e.TS, e.TS+e.Dur, open[n-1].name, open[n-1].start, open[n-1].end)
		}
		open = append(open, interval{e.Name, e.TS, e.TS + e.Dur})
	}
	for _, e := range dev {
		id, ok := e.Args["submission"].(float64)
		if !ok {
			if i, isInt := e.Args["submission"].(int); isInt {
				id, ok = float64(i), true
			}
		}
		if !ok {
			return fmt.Errorf("trace: device span %s at %.3f µs names no submission", e.Name, e.TS)
		}
		s := subs[int(id)]
		if s == nil || s.end < 0 {
			return fmt.Errorf("trace: device span %s names submission %d, which the trace lacks or never ends", e.Name, int(id))
		}
		if e.TS < s.start-eps || e.TS+e.Dur > s.end+eps {
			return fmt.Errorf("trace: device span %s [%.3f, %.3f] µs falls outside its submission %d [%.3f, %.3f]",
				e.Name, e.TS, e.TS+e.Dur, int(id), s.start, s.end)
		}
	}
	return nil
}

// Read parses a trace written by WriteTo.
func Read(r io.Reader) (File, error) {
	var f File
	dec := json.NewDecoder(r)
	if err := dec.Decode(&f); err != nil {
		return f, fmt.Errorf("trace: %w", err)
	}
	return f, nil
}

// Window is the steps [From, To) of a training loop that are traced; the
// zero Window is every step.
type Window struct{ From, To int }

// Contains reports whether step is in the window.
func (w Window) Contains(step int) bool {
	return w == Window{} || step >= w.From && step < w.To
}

func (w Window) String() string { return fmt.Sprintf("%d:%d", w.From, w.To) }

// ParseWindow reads a window written FROM:TO, steps FROM to TO-1 counted
// from 0.
func ParseWindow(s string) (Window, error) {
	var w Window
	from, to, ok := strings.Cut(s, ":")
	var err1, err2 error
	if ok {
		w.From, err1 = strconv.Atoi(from)
		w.To, err2 = strconv.Atoi(to)
	}
	if !ok || err1 != nil || err2 != nil || w.From < 0 || w.To <= w.From {
		return Window{}, fmt.Errorf("trace: steps %q: want FROM:TO, whole numbers with 0 ≤ FROM < TO (steps FROM to TO-1)", s)
	}
	return w, nil
}
