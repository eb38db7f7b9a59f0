package rundir

import (
	"errors"
	"os"
	"path/filepath"
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
	write(t, filepath.Join(dir, "metrics.jsonl"), "first run\n")
	write(t, filepath.Join(dir, "run.json"), "{}\n")
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
