package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func write(t *testing.T, path, s string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(s), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestOpenModes: a directory that holds a run is refused without touching
// it, resumed with its files, or overwritten only once the new run starts.
func TestOpenModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "run")
	d, err := Open(dir, New)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	if err := d.Record("metrics.jsonl", "run.json"); err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "metrics.jsonl"), "first run\n")
	write(t, filepath.Join(dir, "run.json"), "{}\n")
	d.Keep()
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}

	if _, err := Open(dir, New); !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "metrics.jsonl") {
		t.Fatalf("a new run into a finished run's directory: %v, want it refused naming metrics.jsonl", err)
	}
	if b, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl")); string(b) != "first run\n" {
		t.Fatalf("the refused run changed the first run's metrics: %q", b)
	}

	r, err := Open(dir, Resume)
	if err != nil {
		t.Fatal(err)
	}
	r.Start()
	r.Close()
	if _, err := os.Stat(filepath.Join(dir, "metrics.jsonl")); err != nil {
		t.Fatalf("resume removed the run's metrics: %v", err)
	}

	o, err := Open(dir, Overwrite)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "metrics.jsonl")); err != nil {
		t.Fatal("overwrite removed the old run before the new one started")
	}
	if err := o.Start(); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"metrics.jsonl", "run.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("overwrite kept the old run's %s: %v", f, err)
		}
	}
	o.Close()
}

// TestLock: while one run holds a directory, a second is refused with the
// holder's pid, in any mode.
func TestLock(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir, New)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	for _, m := range []Mode{New, Resume, Overwrite} {
		_, err := Open(dir, m)
		if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "pid ") {
			t.Errorf("mode %d: %v, want it refused naming the holder", m, err)
		}
	}
}

// TestFailedBeforeStart: a run that ends before Start leaves no directory
// it created, and nothing in one that was there.
func TestFailedBeforeStart(t *testing.T) {
	root := t.TempDir()
	fresh := filepath.Join(root, "a", "b")
	d, err := Open(fresh, New)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is still there: %v", fresh, err)
	}
	d, err = Open(root, New)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if es, _ := os.ReadDir(root); len(es) != 1 || es[0].Name() != "a" {
		t.Errorf("%s holds %v after a failed run, want only what was there", root, es)
	}
}

// TestOpenNext: runs without a named directory take the next free one.
func TestOpenNext(t *testing.T) {
	base := filepath.Join(t.TempDir(), "pretrain")
	first, err := OpenNext(base)
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	second, err := OpenNext(base)
	if err != nil {
		t.Fatal(err)
	}
	defer second.Close()
	if first.Path != base || second.Path != base+"-2" {
		t.Errorf("got %s and %s, want %s and %s-2", first.Path, second.Path, base, base)
	}
}

// files lists dir's files but the lock.
func files(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		if e.Name() != LockName {
			names = append(names, e.Name())
		}
	}
	return names
}

// TestOverwriteRemovesOnlyTheRun: -overwrite removes what the previous run
// recorded and its checkpoints, never a user's files beside them, with a
// manifest and, for a run from before manifests, by the names runs wrote.
func TestOverwriteRemovesOnlyTheRun(t *testing.T) {
	user := []string{"checkpoint-old-backup.safetensors", "notes.txt", "results.md"}
	for _, manifest := range []bool{true, false} {
		dir := t.TempDir()
		run := []string{"config.json", "metrics.jsonl", "loss.png"}
		if manifest {
			d, err := Open(dir, New)
			if err != nil {
				t.Fatal(err)
			}
			if err := d.Start(); err != nil {
				t.Fatal(err)
			}
			if err := d.Record(run...); err != nil {
				t.Fatal(err)
			}
			d.Keep()
			d.Close()
		}
		for _, f := range append(append(run, "checkpoint-2.safetensors", "checkpoint.safetensors"), user...) {
			write(t, filepath.Join(dir, f), f)
		}
		o, err := Open(dir, Overwrite)
		if err != nil {
			t.Fatal(err)
		}
		if err := o.Start(); err != nil {
			t.Fatal(err)
		}
		o.Close()
		if got := files(t, dir); !slices.Equal(got, user) {
			t.Errorf("manifest %v: after -overwrite the directory holds %v, want the user's %v", manifest, got, user)
		}
	}
}

// TestFailedBeforeFirstStep: a run that fails after Start but before its
// first step (Keep) leaves nothing: no directory it created, and in one
// that was there, nothing but what was there.
func TestFailedBeforeFirstStep(t *testing.T) {
	parent := t.TempDir()
	for _, existed := range []bool{false, true} {
		dir := filepath.Join(parent, fmt.Sprint(existed))
		if existed {
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			write(t, filepath.Join(dir, "notes.txt"), "mine")
		}
		d, err := Open(dir, New)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Start(); err != nil {
			t.Fatal(err)
		}
		if err := d.Record("config.json", "run.json", "metrics.jsonl"); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{"config.json", "run.json", "metrics.jsonl", "checkpoint-0.safetensors"} {
			write(t, filepath.Join(dir, f), f)
		}
		d.Close()
		if !existed {
			if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("the failed run left the directory it created: %v", err)
			}
			continue
		}
		if got := files(t, dir); !slices.Equal(got, []string{"notes.txt"}) {
			t.Errorf("the failed run left %v, want only notes.txt", got)
		}
		again, err := Open(dir, New)
		if err != nil {
			t.Fatalf("a run into the directory after the failed one: %v", err)
		}
		again.Close()
	}
}

// TestStaleTemporaries: resuming removes the temporary files of a
// checkpoint write that was killed, and nothing else.
func TestStaleTemporaries(t *testing.T) {
	dir := t.TempDir()
	keep := []string{"checkpoint-2.safetensors", "checkpoint.safetensors", "config.json", "notes.tmp1"}
	for _, f := range append([]string{"checkpoint-4.safetensors.tmp123456", "checkpoint.safetensors.link"}, keep...) {
		write(t, filepath.Join(dir, f), f)
	}
	d, err := Open(dir, Resume)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if got := files(t, dir); !slices.Equal(got, keep) {
		t.Errorf("after the resume the directory holds %v, want %v", got, keep)
	}
}
