package main

import (
	"bufio"
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/eval"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/strictjson"
)

// TestPretrainAsLibrary: a Go program that builds a run with bt/train's
// hooks, as README.md's "Use bt from Go" (bt/train's ExampleRecorder)
// does, leaves the files bt pretrain leaves, with metrics.jsonl's rows
// holding the same keys, on the settings bt pretrain ran with.
func TestPretrainAsLibrary(t *testing.T) {
	cli := filepath.Join(t.TempDir(), "cli")
	if err := runPretrain(args("-out", cli, "-steps", "4", "-projector", "16-16-16", "-checkpoint-every", "2", "-knn-every", "2", "-knn-images", "40")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(cli, train.ConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	var cfg train.Config
	if err := strictjson.Decode(b, &cfg); err != nil {
		t.Fatal(err)
	}

	d := gputest.Device(t)
	lib := t.TempDir()
	keep := train.Keeping{CheckpointEvery: 2, Keep: train.DefaultKeep, KNNEvery: 2, KNNImages: 40}
	run, err := train.New(d, cfg, train.Options{CheckpointDir: lib, CheckpointEvery: keep.CheckpointEvery, Keep: keep.Keep})
	if err != nil {
		t.Fatal(err)
	}
	defer run.Release()
	if err := run.WriteSettings(lib, keep); err != nil {
		t.Fatal(err)
	}
	rec, err := train.NewRecorder(run, lib)
	if err != nil {
		t.Fatal(err)
	}
	rec.Watch = train.NewWatch(func(w train.Warning) { t.Log(w) })
	knn := eval.Monitor{Every: keep.KNNEvery, TrainImages: keep.KNNImages, Report: func(step int, acc []float64) error {
		rec.KNN(step, acc)
		return nil
	}}
	run.Loop.Hooks = append([]train.Hook{rec.Watch.Hook(), knn.Hook(d, run)}, rec.Hooks()...)
	if err := rec.Finish(run.Loop.Execute(context.Background())); err != nil {
		t.Fatal(err)
	}

	if got, want := files(t, lib), files(t, cli); !slices.Equal(got, want) {
		t.Errorf("the library run wrote %v; bt pretrain wrote %v", got, want)
	}
	got, want := rowKeys(t, filepath.Join(lib, train.MetricsFile)), rowKeys(t, filepath.Join(cli, train.MetricsFile))
	if len(want) != 4 || !slices.Contains(want[1], "knn20") {
		t.Fatalf("bt pretrain's metrics: %v; want 4 rows, kNN figures in the second", want)
	}
	if !slices.EqualFunc(got, want, slices.Equal) {
		t.Errorf("the library run's metrics rows have the keys %v; bt pretrain's %v", got, want)
	}
	for _, name := range []string{train.ConfigFile, train.RunFile} {
		l, _ := os.ReadFile(filepath.Join(lib, name))
		c, _ := os.ReadFile(filepath.Join(cli, name))
		if string(l) != string(c) {
			t.Errorf("%s differs:\nlibrary: %s\nbt pretrain: %s", name, l, c)
		}
	}
}

// files are the names of the files in dir, but for the run directory's
// own (rundir's lock and manifest).
func files(t *testing.T, dir string) []string {
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".") {
			names = append(names, e.Name())
		}
	}
	return names
}

// rowKeys are the keys of each row of a metrics file, sorted.
func rowKeys(t *testing.T, path string) [][]string {
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var keys [][]string
	for rows := bufio.NewScanner(f); rows.Scan(); {
		var row map[string]any
		if err := json.Unmarshal(rows.Bytes(), &row); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, slices.Sorted(maps.Keys(row)))
	}
	return keys
}
