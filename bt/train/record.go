package train

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"

	"github.com/bt-org/bt/internal/report"
	"github.com/bt-org/bt/internal/strictjson"
	"github.com/bt-org/bt/pipeline"
)

// The files of a run's directory that a Recorder and Run.WriteSettings
// write, beside the checkpoints: bt serve reads them.
const (
	MetricsFile = "metrics.jsonl"
	ConfigFile  = "config.json"
	RunFile     = "run.json"
)

// PlotEvery is how many steps apart a Recorder redraws its curves.
const PlotEvery = 200

// heatDims is how many embedding dimensions the heat maps of C show.
const heatDims = 64

// Recorder writes a run's outputs into its directory while it trains:
//
//   - metrics.jsonl, one JSON row per step (step, epoch, loss, the learning
//     rates, pairs/s, elapsed seconds, bad images, device and resident
//     bytes, the loss's terms and C's figures, the embeddings' spread, the
//     ranks' traffic, a Watch's warnings and the kNN figures of the steps
//     they were taken at), and, for a run stopped by a non-finite loss, a
//     last row naming the error;
//   - loss.png, lr.png and, once there are kNN figures, knn.png: curves
//     over the whole run, redrawn every PlotEvery steps and at the end;
//   - c_start.png and c_end.png: heat maps of the cross-correlation matrix
//     C after the first step and at the end.
//
// A resumed run's metrics are cut back to its checkpoint's step first, so
// that no step is logged twice, and its curves continue the rows kept.
// Install Hooks on the run's Loop after a Watch's and a kNN monitor's, and
// call Finish with Execute's error.
type Recorder struct {
	// Watch, when set, puts its active warnings in each row ("warnings").
	Watch *Watch
	// History is what the curves draw, over the whole run.
	History History

	dir     string
	run     *Run
	metrics *os.File
	start   int       // the trainer's step when the recorder was made
	knn     []float64 // kNN figures for the next row; nil: none
}

// History is a run's figures over its whole length: a resumed run's start
// with the rows its metrics kept.
type History struct {
	Steps, LRWeights, Loss  []float64 // one per step; steps counted from 1
	KNNSteps, KNN20, KNN200 []float64 // one per kNN check; accuracy in percent
	// Last is the event of the last step trained by this process; zero
	// before the first.
	Last Event
}

// NewRecorder opens metrics.jsonl in dir for run, which starts at its
// trainer's step: rows of later steps, left by an interrupted run, are
// dropped and the rest read into History.
func NewRecorder(run *Run, dir string) (*Recorder, error) {
	r := &Recorder{dir: dir, run: run, start: run.Trainer.Step}
	path := filepath.Join(dir, MetricsFile)
	kept, err := TruncateMetrics(path, r.start)
	if err != nil {
		return nil, err
	}
	h := &r.History
	for _, row := range kept {
		h.Steps, h.LRWeights, h.Loss = append(h.Steps, float64(*row.Step)), append(h.LRWeights, row.LRWeights), append(h.Loss, float64(row.Loss))
		if row.KNN20 == nil { // the monitor ran on the validation split
			row.KNN20, row.KNN200 = row.ValKNN20, row.ValKNN200
		}
		if row.KNN20 != nil && row.KNN200 != nil {
			h.KNNSteps, h.KNN20, h.KNN200 = append(h.KNNSteps, float64(*row.Step)), append(h.KNN20, 100**row.KNN20), append(h.KNN200, 100**row.KNN200)
		}
	}
	if r.metrics, err = os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644); err != nil {
		return nil, err
	}
	return r, nil
}

// Hooks are the recorder's hooks, in order: "metrics" (every step),
// "cross-correlation at the start" (after the first step; a resumed run
// keeps its start's) and "plots" (every PlotEvery steps and at the end).
func (r *Recorder) Hooks() []Hook {
	return []Hook{
		{Name: "metrics", Fn: func(_ *Loop, ev Event) error { return r.row(ev) }},
		{Name: "cross-correlation at the start", Fn: func(_ *Loop, ev Event) error {
			if ev.Step == 0 {
				return r.Heatmap("c_start.png", ev.Step+1)
			}
			return nil
		}},
		{Name: "plots", Every: PlotEvery, AtEnd: true, Fn: func(*Loop, Event) error { return r.Plot() }},
	}
}

// KNN records kNN accuracies at k = 20 and 200, taken after step (counted
// from 1) on the run's choice split (DataConfig.ChoiceSplit): they go into
// the next row and knn.png.
func (r *Recorder) KNN(step int, acc []float64) {
	r.knn = acc
	h := &r.History
	h.KNNSteps, h.KNN20, h.KNN200 = append(h.KNNSteps, float64(step)), append(h.KNN20, 100*acc[0]), append(h.KNN200, 100*acc[1])
}

// row appends the metrics row of a step.
func (r *Recorder) row(ev Event) error {
	h := &r.History
	h.Last = ev
	h.Steps, h.LRWeights, h.Loss = append(h.Steps, float64(ev.Step+1)), append(h.LRWeights, float64(ev.LRWeights)), append(h.Loss, float64(ev.Loss))
	mem := r.run.Trainer.d.MemStats()
	row := map[string]any{"step": ev.Step + 1, "epoch": ev.Epoch, "loss": ev.Loss,
		"lr_weights": ev.LRWeights, "lr_biases": ev.LRVectors, "pairs_per_s": ev.PairsPerS, "elapsed_s": ev.Elapsed.Seconds(),
		"bad_images": len(r.run.Loader.Skipped()), "device_bytes": mem.Live + mem.Idle, "rss_bytes": rssBytes()}
	if m := r.run.Trainer.Comm(); m != nil {
		row["comm_bytes"], row["comm_s"] = m.Bytes, m.Time.Seconds()
	}
	if r.knn != nil {
		// The split is in the name: knn20 is always the test split's, as
		// in runs written before the validation split.
		key := map[string]string{TestSplit: "knn", ValidationSplit: "val_knn"}[r.run.Config.Data.ChoiceSplit()]
		row[key+"20"], row[key+"200"] = r.knn[0], r.knn[1]
		r.knn = nil
	}
	if t := ev.Terms; t != nil {
		row["invariance"], row["redundancy"], row["mean_c_ii"] = t.OnDiag, t.OffDiag, t.MeanDiag
		if !math.IsNaN(float64(t.MeanAbsOff)) {
			row["mean_abs_c_ij"] = t.MeanAbsOff
		}
		row["rms_c_ij"] = t.RMSOff
	}
	if sp := ev.Spread; sp != nil {
		row["z_std_mean"], row["z_std_min"] = sp.Mean, sp.Min
	}
	if r.Watch != nil {
		if a := r.Watch.Active(); len(a) > 0 {
			row["warnings"] = a
		}
	}
	b, _ := json.Marshal(row)
	_, err := r.metrics.Write(append(b, '\n'))
	return err
}

// Plot draws loss.png, lr.png and, with kNN figures, knn.png from the
// History (nothing before it has two steps).
func (r *Recorder) Plot() error {
	h, cfg := r.History, r.run.Config
	if len(h.Steps) < 2 {
		return nil
	}
	what := fmt.Sprintf("%s on %s, batch %d", cfg.Model.Arch, cfg.Data.Name, cfg.Batch)
	if err := report.Curves(filepath.Join(r.dir, "loss.png"), what, "step", "Barlow Twins loss", report.Series{Name: "loss", X: h.Steps, Y: h.Loss}); err != nil {
		return err
	}
	if err := report.Curves(filepath.Join(r.dir, "lr.png"), what+": the schedule", "step", "learning rate of the weights", report.Series{Name: "weights", X: h.Steps, Y: h.LRWeights}); err != nil {
		return err
	}
	if len(h.KNNSteps) == 0 {
		return nil
	}
	return report.Curves(filepath.Join(r.dir, "knn.png"), what+": kNN on the "+cfg.Data.ChoiceSplit()+" split", "step", "top-1 (%)",
		report.Series{Name: "k = 20", X: h.KNNSteps, Y: h.KNN20}, report.Series{Name: "k = 200", X: h.KNNSteps, Y: h.KNN200})
}

// Heatmap draws C of the first embedding dimensions of the last step's
// batch as the PNG name, titled after step (over several ranks, rank 0's
// share of the batch).
func (r *Recorder) Heatmap(name string, step int) error {
	za, zb, err := r.run.Trainer.Embeddings()
	if err != nil {
		return err
	}
	dim := r.run.Model.Projector.Out
	title := fmt.Sprintf("C of the first %d embedding dimensions after step %d", min(heatDims, dim), step)
	return report.Heatmap(filepath.Join(r.dir, name), title, CrossCorrelation(za, zb, len(za)/dim, dim, heatDims), min(heatDims, dim))
}

// Finish ends the recording of a run whose Loop.Execute returned err and
// returns err with whatever failed here. A run stopped by a non-finite
// loss gets a last row that says why, so that a reader of the metrics (bt
// serve) tells a diverged run from a stopped one; a finished run gets
// c_end.png.
func (r *Recorder) Finish(err error) error {
	if errors.Is(err, ErrNonFinite) {
		// The step after the last one logged, which a resume drops.
		step := r.start + 1
		if n := len(r.History.Steps); n > 0 {
			step = int(r.History.Steps[n-1]) + 1
		}
		b, _ := json.Marshal(map[string]any{"step": step, "error": err.Error()})
		if _, werr := r.metrics.Write(append(b, '\n')); werr != nil {
			err = errors.Join(err, werr)
		}
	}
	if err == nil {
		err = r.Heatmap("c_end.png", r.run.Trainer.Step)
	}
	return errors.Join(err, r.Close())
}

// Close closes metrics.jsonl; Finish does, and a second Close does
// nothing.
func (r *Recorder) Close() error {
	if r.metrics == nil {
		return nil
	}
	err := r.metrics.Close()
	r.metrics = nil
	return err
}

// MetricsRow is what a resumed run reads back of a step's metrics.
type MetricsRow struct {
	Step      *int     `json:"step"` // nil: not a metrics row
	Loss      float32  `json:"loss"`
	LRWeights float64  `json:"lr_weights"`
	KNN20     *float64 `json:"knn20"` // nil at the steps the kNN monitor skipped
	KNN200    *float64 `json:"knn200"`
	ValKNN20  *float64 `json:"val_knn20"` // the same on the validation split
	ValKNN200 *float64 `json:"val_knn200"`
}

// TruncateMetrics keeps the lines of a metrics file that come from steps
// up to step (counted from 1, as logged), so a resumed run does not log
// the steps after its checkpoint twice, and returns them. A missing file
// is no error.
func TruncateMetrics(path string, step int) ([]MetricsRow, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var kept []byte
	var rows []MetricsRow
	for line := range bytes.Lines(b) {
		var r MetricsRow
		if err := json.Unmarshal(line, &r); err != nil || r.Step == nil {
			return nil, fmt.Errorf("%s: a line is not a metrics row (%q); move the file away to resume", path, bytes.TrimSpace(line))
		}
		if *r.Step <= step {
			kept = append(kept, line...)
			rows = append(rows, r)
		}
	}
	if len(kept) == len(b) {
		return rows, nil
	}
	return rows, os.WriteFile(path, kept, 0o644)
}

// rssBytes is the process's resident memory, from /proc where there is
// one (0 elsewhere): the device's host-side copies and the loader's images
// live outside Go's heap, so runtime.MemStats would not see them.
func rssBytes() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	var size, resident int64
	if _, err := fmt.Sscan(string(b), &size, &resident); err != nil {
		return 0
	}
	return resident * int64(os.Getpagesize())
}

// Keeping is how a run is kept, beside what it trains (Config): bt
// pretrain -resume takes it from the run's run.json unless given again,
// so that a run started with a kNN monitor and its own checkpoint interval
// keeps them when resumed.
type Keeping struct {
	CheckpointEvery int `json:"checkpoint_every"`
	Keep            int `json:"keep"`
	KNNEvery        int `json:"knn_every"`
	KNNImages       int `json:"knn_images"`
	// Dataset describes the training data (absent from runs before it
	// was recorded).
	Dataset *pipeline.Fingerprint `json:"dataset,omitempty"`
}

// ReadKeeping reads a run.json; ok is false for a run written before
// run.json existed, which has none.
func ReadKeeping(path string) (k Keeping, ok bool, err error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return k, false, nil
	}
	if err != nil {
		return k, false, err
	}
	if err := strictjson.Decode(b, &k); err != nil {
		return k, false, fmt.Errorf("%s: %v", path, err)
	}
	return k, true, nil
}

// WriteSettings writes the run's resolved Config (config.json, which bt
// pretrain -config reads back) and k with the run's dataset (run.json)
// into dir.
func (r *Run) WriteSettings(dir string, k Keeping) error {
	raw, err := json.MarshalIndent(r.Config, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, ConfigFile), append(raw, '\n'), 0o644); err != nil {
		return err
	}
	k.Dataset = &r.Dataset
	keeping, _ := json.MarshalIndent(k, "", "  ")
	return os.WriteFile(filepath.Join(dir, RunFile), append(keeping, '\n'), 0o644)
}
