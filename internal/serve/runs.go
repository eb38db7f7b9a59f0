package serve

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/rundir"
)

// State is what a run is doing, derived from what its directory holds.
type State string

const (
	Running  State = "running"  // a process holds the directory's lock
	Finished State = "finished" // it reached its last step and wrote its end figures
	Stopped  State = "stopped"  // it ended before its last step (Ctrl-C, a crash, a kill)
	Diverged State = "diverged" // it stopped at a non-finite loss
)

// Kind is what wrote a run.
type Kind string

const (
	Pretrain Kind = "pretrain" // bt pretrain
	Demo     Kind = "demo"     // bt demo: a pretraining run and its results.md
	Variant  Kind = "ablate"   // one variant of a bt ablate grid (result.json)
)

// Run is a run directory as the runs page lists it.
type Run struct {
	ID     string `json:"id"`   // its path under the runs directory, with slashes; "." for the directory itself
	Kind   Kind   `json:"kind"` // what wrote it
	Grid   string `json:"grid,omitempty"`
	State  State  `json:"state"`
	Reason string `json:"reason"` // what in the directory the state was read from
	// Holder is the lock file's account of the process that holds or
	// last held the run: its pid, host, start and command line.
	Holder string    `json:"holder,omitempty"`
	Start  time.Time `json:"start,omitzero"`
	// Steps is the last step logged; Total the run's length where its
	// configuration names one (-steps), else 0.
	Steps       int             `json:"steps"`
	Total       int             `json:"total,omitempty"`
	Config      json.RawMessage `json:"config,omitempty"`
	Last        map[string]any  `json:"last,omitempty"` // the last metrics row, every field as written
	Checkpoints []string        `json:"checkpoints"`    // checkpoint files, the newest (checkpoint.safetensors) first
	Heatmaps    []string        `json:"heatmaps"`       // cross-correlation heat maps (c_*.png)
	Plots       []string        `json:"plots"`          // the other PNGs the run wrote
	Result      json.RawMessage `json:"result,omitempty"`
	Updated     time.Time       `json:"updated"`
}

// markers are the files that make a directory a run.
var markers = []string{"metrics.jsonl", "config.json", train.Latest, "result.json"}

// maxDepth bounds how deep under the runs directory runs are looked for:
// runs/ablate-lambda/lambda-0.005 is two levels down, runs/sweep/family/variant three.
const maxDepth = 4

// listRuns finds the runs under the server's root, sorted by ID.
func (s *Server) listRuns() ([]Run, error) {
	var runs []Run
	err := fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			return nil // an unreadable subdirectory hides only itself
		}
		if !d.IsDir() {
			return nil
		}
		if p != "." && (strings.HasPrefix(d.Name(), ".") || strings.Count(p, "/") >= maxDepth) {
			return fs.SkipDir
		}
		if !s.isRun(p) {
			return nil
		}
		r, err := s.readRun(p)
		if err != nil {
			return nil
		}
		runs = append(runs, r)
		return nil
	})
	slices.SortFunc(runs, func(a, b Run) int { return strings.Compare(a.ID, b.ID) })
	return runs, err
}

func (s *Server) isRun(dir string) bool {
	for _, m := range markers {
		if fi, err := s.root.Stat(path.Join(dir, m)); err == nil && fi.Mode().IsRegular() {
			return true
		}
	}
	return false
}

// readRun reads what a run directory holds. id is a clean slash path
// under the root.
func (s *Server) readRun(id string) (Run, error) {
	if !s.isRun(id) {
		return Run{}, fs.ErrNotExist
	}
	r := Run{ID: id, Kind: Pretrain, Checkpoints: []string{}, Heatmaps: []string{}, Plots: []string{}}
	entries, err := fs.ReadDir(s.root.FS(), id)
	if err != nil {
		return r, err
	}
	var names []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		names = append(names, e.Name())
		if fi, err := e.Info(); err == nil && fi.ModTime().After(r.Updated) {
			r.Updated = fi.ModTime()
		}
	}
	has := func(n string) bool { return slices.Contains(names, n) }
	for _, n := range names {
		switch {
		case n == train.Latest || strings.HasPrefix(n, "checkpoint-") && strings.HasSuffix(n, ".safetensors"):
			r.Checkpoints = append(r.Checkpoints, n)
		case strings.HasPrefix(n, "c_") && strings.HasSuffix(n, ".png"):
			r.Heatmaps = append(r.Heatmaps, n)
		case strings.HasSuffix(n, ".png"):
			r.Plots = append(r.Plots, n)
		}
	}
	// checkpoint.safetensors, then checkpoint-STEP files newest first.
	slices.SortFunc(r.Checkpoints, func(a, b string) int { return stepOf(b) - stepOf(a) })
	// c_start before c_STEP before c_end: the order they were written in.
	slices.SortFunc(r.Heatmaps, func(a, b string) int { return heatOrder(a) - heatOrder(b) })

	if b, err := s.readSmall(path.Join(id, "config.json")); err == nil && json.Valid(b) {
		r.Config = b
		var c struct {
			Steps int `json:"steps"`
		}
		if json.Unmarshal(b, &c) == nil {
			r.Total = c.Steps
		}
	}
	var result struct {
		Diverged string `json:"diverged"`
		Unfit    string `json:"does_not_fit"`
		SameAs   string `json:"same_as"`
		Steps    int    `json:"steps"`
	}
	if b, err := s.readSmall(path.Join(id, "result.json")); err == nil && json.Valid(b) {
		r.Result = b
		r.Kind = Variant
		json.Unmarshal(b, &result)
	}
	if id != "." && r.Kind != Variant {
		if fi, err := s.root.Stat(path.Join(path.Dir(id), "ablation.md")); err == nil && fi.Mode().IsRegular() {
			r.Kind = Variant
		}
	}
	if r.Kind == Variant {
		r.Grid = path.Dir(id)
	} else if has("results.md") {
		r.Kind = Demo
	}

	if last, err := s.lastRow(path.Join(id, "metrics.jsonl")); err == nil && last != nil {
		r.Last = last
		r.Steps = intField(last, "step")
	}
	if r.Steps == 0 && result.Steps > 0 {
		r.Steps = result.Steps
	}

	lock := path.Join(id, rundir.LockName)
	if b, err := s.readSmall(lock); err == nil {
		r.Holder = strings.TrimSpace(string(b))
		r.Start = holderStart(r.Holder)
	}
	if fi, err := s.root.Stat(path.Join(id, "config.json")); r.Start.IsZero() && err == nil {
		r.Start = fi.ModTime() // written as the run starts
	}
	r.State, r.Reason = s.state(id, r, has, result.Diverged, result.Unfit, result.SameAs)
	return r, nil
}

// state derives a run's state from its directory: the lock held by a
// live process (running); a divergence recorded by bt ablate or in a
// metrics row (diverged); its last step reached, or c_end.png, which a
// run writes only after its last step, newer than its metrics (finished);
// anything else ended early (stopped).
func (s *Server) state(id string, r Run, has func(string) bool, diverged, unfit, sameAs string) (State, string) {
	if has(rundir.LockName) {
		if held, why := s.locked(path.Join(id, rundir.LockName), r.Holder); held {
			return Running, why
		}
	}
	switch {
	case diverged != "":
		return Diverged, "result.json: " + diverged
	case unfit != "":
		return Stopped, "result.json: does not fit: " + unfit
	case sameAs != "":
		return Finished, "result.json: the same run as " + sameAs
	}
	if e, ok := r.Last["error"].(string); ok && e != "" {
		if strings.Contains(e, "non-finite") || strings.Contains(e, "NaN") {
			return Diverged, "metrics.jsonl: " + e
		}
		return Stopped, "metrics.jsonl: " + e
	}
	if l, ok := r.Last["loss"]; ok {
		if f, isNum := l.(float64); !isNum || math.IsInf(f, 0) || math.IsNaN(f) {
			return Diverged, "metrics.jsonl: the last loss is not finite"
		}
	}
	if r.Total > 0 && r.Steps >= r.Total {
		return Finished, "metrics.jsonl reached step " + strconv.Itoa(r.Total) + " of config.json's steps"
	}
	if has("c_end.png") {
		end, err1 := s.root.Stat(path.Join(id, "c_end.png"))
		m, err2 := s.root.Stat(path.Join(id, "metrics.jsonl"))
		if err1 == nil && (err2 != nil || !end.ModTime().Before(m.ModTime())) {
			return Finished, "c_end.png, written after the last step, is newer than metrics.jsonl"
		}
	}
	if has("result.json") || has("results.md") {
		return Finished, "its results were written"
	}
	return Stopped, "no process holds its lock and it ended before its last step"
}

// holderStart reads the start time from a lock file's holder line ("pid N
// on HOST since RFC3339: command").
func holderStart(holder string) time.Time {
	_, rest, ok := strings.Cut(holder, " since ")
	if !ok {
		return time.Time{}
	}
	when, _, _ := strings.Cut(rest, ": ")
	t, _ := time.Parse(time.RFC3339, when)
	return t
}

// holderPID reads the pid and host from a holder line.
func holderPID(holder string) (int, string) {
	var pid int
	var host string
	if _, err := fmt.Sscanf(holder, "pid %d on %s", &pid, &host); err != nil {
		return 0, ""
	}
	return pid, host
}

func stepOf(name string) int {
	n, err := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(name, "checkpoint-"), ".safetensors"))
	if err != nil {
		return math.MaxInt32 // checkpoint.safetensors: the newest
	}
	return n
}

func heatOrder(name string) int {
	s := strings.TrimSuffix(strings.TrimPrefix(name, "c_"), ".png")
	switch s {
	case "start":
		return -1
	case "end":
		return math.MaxInt32
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return math.MaxInt32 - 1
	}
	return n
}

func intField(row map[string]any, key string) int {
	f, _ := row[key].(float64)
	return int(f)
}

// lastRow returns the last complete row of a metrics file, reading only
// its end.
func (s *Server) lastRow(name string) (map[string]any, error) {
	f, err := s.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	size := fi.Size()
	from := max(0, size-maxLine)
	buf := make([]byte, size-from)
	if _, err := f.ReadAt(buf, from); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	rows, _, _ := parseRows(buf, from > 0)
	if len(rows) == 0 {
		return nil, nil
	}
	return rows[len(rows)-1], nil
}

// maxLine is the longest metrics row read; a longer line is skipped.
const maxLine = 64 << 10

// parseRow decodes one metrics line; ok is false for a line that holds no
// JSON object (blank, damaged).
func parseRow(line []byte) (map[string]any, bool) {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return nil, false
	}
	var row map[string]any
	if err := json.Unmarshal(line, &row); err != nil {
		return nil, false
	}
	return row, true
}

// parseRows decodes the complete lines of b: what follows its last
// newline is a row still being written and is left for the next read.
// With skipFirst the first line is a fragment (b starts mid-file). It
// returns the rows, the bytes consumed and the lines that held no row.
func parseRows(b []byte, skipFirst bool) (rows []map[string]any, used int, bad int) {
	end := bytes.LastIndexByte(b, '\n') + 1
	start := 0
	if skipFirst {
		start = min(bytes.IndexByte(b, '\n')+1, end)
	}
	for line := range bytes.Lines(b[start:end]) {
		if row, ok := parseRow(line); ok {
			rows = append(rows, row)
		} else if len(bytes.TrimSpace(line)) > 0 {
			bad++
		}
	}
	return rows, end, bad
}
