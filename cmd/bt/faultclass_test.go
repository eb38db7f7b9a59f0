package main

// The fault classes of issue 40, each tried through the command line as a
// user meets it: reads that never end, ranks that fail apart, data that is
// silently misread, run directories that lose what is not the run's.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bt-org/bt/bt/train"
)

// folderFlags pretrains the tiny network on the folder at dir.
func folderFlags(data, dir string, extra ...string) []string {
	return append([]string{"-arch", "tiny", "-data", data, "-data-dir", dir, "-augment", "cifar", "-size", "16",
		"-batch", "8", "-projector", "32-32-32", "-workers", "2"}, extra...)
}

// TestFIFOImage: a named pipe called x.png among the images stops the run
// with an error naming it, instead of blocking the loader for ever.
func TestFIFOImage(t *testing.T) {
	root := t.TempDir()
	writeImages(t, filepath.Join(root, "x"), 16)
	fifo := filepath.Join(root, "x", "x.png")
	mkfifo(t, fifo)
	out := filepath.Join(t.TempDir(), "run")
	err := runPretrain(folderFlags("folder-unlabeled", root, "-steps", "4", "-out", out))
	if err == nil || !strings.Contains(err.Error(), fifo+": not a regular file") {
		t.Fatalf("got %v, want the run stopped naming %s", err, fifo)
	}
}

// TestEmbedNames: names_train.txt keeps one row a line when a file name
// holds a line break (or starts with a quote): that name is written as a
// JSON string, every other as it is.
func TestEmbedNames(t *testing.T) {
	if runtime.GOOS == "windows" {
		t.Skip("Windows forbids line breaks and quotes in file names, the names this test needs")
	}
	root := t.TempDir()
	writeImages(t, root, 4)
	b, err := os.ReadFile(filepath.Join(root, "imgaa.png"))
	if err != nil {
		t.Fatal(err)
	}
	odd := []string{"a\nb.png", `"quoted.png`}
	for _, name := range odd {
		if err := os.WriteFile(filepath.Join(root, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "emb")
	if err := runEval([]string{"-random", "-data", "folder-unlabeled", "-data-dir", root, "-augment", "cifar", "-size", "16", "embed", "-out", out}); err != nil {
		t.Fatal(err)
	}
	rows, _, _ := readNpyF32(t, filepath.Join(out, "features_train.npy"))
	text, err := os.ReadFile(filepath.Join(out, "names_train.txt"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(string(text), "\n"), "\n")
	if rows != 6 || len(lines) != rows {
		t.Fatalf("%d rows, %d lines, want 6 of each:\n%s", rows, len(lines), text)
	}
	var names []string
	for _, l := range lines {
		if strings.HasPrefix(l, `"`) {
			if err := json.Unmarshal([]byte(l), &l); err != nil {
				t.Fatalf("line %q: %v", l, err)
			}
		}
		names = append(names, filepath.Base(l))
	}
	for _, name := range append(odd, "imgaa.png", "imgda.png") {
		if !slices.Contains(names, name) {
			t.Errorf("names %q lack %q", names, name)
		}
	}
}

// TestResumeForeignCheckpoint: a checkpoint copied from another run into a
// run's directory is refused by -resume before anything there changes.
func TestResumeForeignCheckpoint(t *testing.T) {
	mine, other := filepath.Join(t.TempDir(), "mine"), filepath.Join(t.TempDir(), "other")
	if err := runPretrain(args("-out", mine, "-steps", "4", "-checkpoint-every", "2")); err != nil {
		t.Fatal(err)
	}
	if err := runPretrain(args("-out", other, "-steps", "4", "-checkpoint-every", "2", "-seed", "9")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(other, "checkpoint-2.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(mine, "checkpoint-foreign.safetensors")
	if err := os.WriteFile(foreign, b, 0o644); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, mine)
	err = runPretrain([]string{"-resume", foreign, "-steps", "6"})
	if err == nil || !strings.Contains(err.Error(), "holds another run") {
		t.Fatalf("resuming another run's checkpoint in %s: %v, want it refused", mine, err)
	}
	after := snapshot(t, mine)
	if len(after) != len(before) {
		t.Errorf("files before %d, after %d", len(before), len(after))
	}
	for name, b := range before {
		if !bytes.Equal(after[name], b) {
			t.Errorf("%s changed", name)
		}
	}
}

// TestOverwriteKeepsUserFiles: -overwrite removes the previous run's files
// and no other: a user's backup checkpoint and notes beside them stay.
func TestOverwriteKeepsUserFiles(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(args("-out", out, "-steps", "2")); err != nil {
		t.Fatal(err)
	}
	user := map[string]string{"checkpoint-old-backup.safetensors": "a backup", "results.md": "my notes"}
	for name, text := range user {
		if err := os.WriteFile(filepath.Join(out, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := runPretrain(args("-out", out, "-steps", "3", "-overwrite")); err != nil {
		t.Fatal(err)
	}
	for name, text := range user {
		if b, err := os.ReadFile(filepath.Join(out, name)); err != nil || string(b) != text {
			t.Errorf("%s after -overwrite: %q, %v; want it untouched", name, b, err)
		}
	}
	if _, err := os.Stat(filepath.Join(out, "checkpoint-2.safetensors")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the first run's checkpoint-2 survived -overwrite: %v", err)
	}
}

// TestFailedFirstImage: a run stopped by a bad first image leaves nothing
// in -out, and the next run into it starts as into a new directory.
func TestFailedFirstImage(t *testing.T) {
	root := t.TempDir()
	writeImages(t, filepath.Join(root, "x"), 8)
	for _, name := range []string{"a.png", "b.png", "c.png", "d.png"} { // one in the first batch of 8 of the 12
		if err := os.WriteFile(filepath.Join(root, "x", name), []byte("not an image"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	parent := t.TempDir()
	out := filepath.Join(parent, "run")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	err := runPretrain(folderFlags("folder-unlabeled", root, "-steps", "4", "-out", out))
	if err == nil || !strings.Contains(err.Error(), "not an image") && !strings.Contains(err.Error(), "unknown format") {
		t.Fatalf("got %v, want the run stopped by a bad image", err)
	}
	if left := snapshot(t, out); len(left) != 0 {
		t.Errorf("the failed run left %d files in %s", len(left), out)
	}
	if err := runPretrain(args("-out", out, "-steps", "2")); err != nil {
		t.Errorf("a run into the failed run's directory: %v", err)
	}
}

// TestBadImageMidRun: a bad image reached after some steps stops the run
// with a checkpoint of the steps done, which its error names and -resume
// continues once the image is gone.
func TestBadImageMidRun(t *testing.T) {
	root := t.TempDir()
	writeImages(t, filepath.Join(root, "x"), 24)
	bad := filepath.Join(root, "x", "zz.png") // sorted last: past the first batches
	if err := os.WriteFile(bad, []byte("not an image"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "run")
	err := runPretrain(folderFlags("folder-unlabeled", root, "-steps", "12", "-out", out))
	if err == nil || !strings.Contains(err.Error(), bad) {
		t.Fatalf("got %v, want the run stopped naming %s", err, bad)
	}
	m := regexp.MustCompile(`resume from (\S+\.safetensors) \(step (\d+)\)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("the error names no checkpoint: %v", err)
	}
	c, err := train.LoadCheckpoint(m[1])
	if err != nil || fmt.Sprint(c.State.Step) != m[2] || c.State.Step == 0 {
		t.Fatalf("the named checkpoint: %v (step %v, named %s)", err, c, m[2])
	}
	t.Logf("stopped at step %d", c.State.Step)
}

// TestCheckpointShapeDamage: a checkpoint whose header gives a tensor
// another shape is refused naming the tensor.
func TestCheckpointShapeDamage(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(args("-out", out, "-steps", "2")); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, train.Latest))
	if err != nil {
		t.Fatal(err)
	}
	// A bias of the 64-64-64 projector, shape [64]: [32] keeps the
	// header's length and halves the tensor's byte count.
	c, err := train.LoadCheckpoint(filepath.Join(out, train.Latest))
	if err != nil {
		t.Fatal(err)
	}
	name := ""
	for _, n := range c.Names() {
		if strings.HasPrefix(n, "projector") && strings.HasSuffix(n, "bias") && len(c.Tensor(n)) == 64 {
			name = n
			break
		}
	}
	i := bytes.Index(b, []byte(`"`+name+`"`))
	j := bytes.Index(b[max(i, 0):], []byte("[64]"))
	if name == "" || i < 0 || j < 0 {
		t.Fatalf("no projector bias of shape [64] in the header")
	}
	copy(b[i+j:], "[32]")
	path := filepath.Join(t.TempDir(), "damaged.safetensors")
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := train.LoadCheckpoint(path); err == nil || !strings.Contains(err.Error(), "tensor "+name+" has shape [32]") {
		t.Errorf("got %v, want an error naming %s", err, name)
	}
}

// TestHelpDefaults: -h shows the run options' defaults.
func TestHelpDefaults(t *testing.T) {
	cfg := train.DefaultConfig()
	fs, _ := pretrainFlags(&cfg)
	for name, want := range map[string]string{"checkpoint-every": "500", "keep": "3", "knn-images": "5000"} {
		if got := fs.Lookup(name).DefValue; got != want {
			t.Errorf("-%s shows default %q, want %q", name, got, want)
		}
	}
}

// TestSecondInterrupt: the first Ctrl-C asks the run to stop after its
// step; a second, once the first has been heard, ends the process at
// once, by the signal (on Windows, by the console control event's
// default handling).
func TestSecondInterrupt(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cmd := btCommand("pretrain", args("-out", out, "-steps", "100000")...)
	ctrlCGroup(cmd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() // a test that fails leaves no run holding its directory
	for {
		b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
		if bytes.Count(b, []byte("\n")) >= 1 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := sendCtrlC(cmd.Process); err != nil {
		t.Fatal(err)
	}
	heard := false
	for s := bufio.NewScanner(stderr); s.Scan(); {
		if strings.Contains(s.Text(), "Ctrl-C again to exit at once") {
			heard = true
			break
		}
	}
	if !heard {
		t.Fatal("the run never said it heard the first Ctrl-C")
	}
	if err := sendCtrlC(cmd.Process); err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, stderr)
	err = cmd.Wait()
	if !endedByCtrlC(err) {
		t.Errorf("after the second Ctrl-C: %v, want the process ended by it", err)
	}
}

// TestInterruptCheckpoint: Ctrl-C stops the run after the step in flight
// with a checkpoint of that step, named in the error, which loads.
func TestInterruptCheckpoint(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	cmd := btCommand("pretrain", args("-out", out, "-steps", "100000", "-checkpoint-every", "100000")...)
	ctrlCGroup(cmd)
	var log bytes.Buffer
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill() // a test that fails leaves no run holding its directory
	for {
		b, _ := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
		if bytes.Count(b, []byte("\n")) >= 2 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := sendCtrlC(cmd.Process); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	m := regexp.MustCompile(`stopped at step ([0-9]+) .*resume from (\S+) \(step ([0-9]+)\)`).FindStringSubmatch(log.String())
	if err == nil || endedByCtrlC(err) || m == nil || m[1] != m[3] {
		t.Fatalf("after Ctrl-C: %v, want an error naming the step stopped at and its checkpoint:\n%s", err, log.String())
	}
	if m[2] != filepath.Join(out, "checkpoint-"+m[1]+".safetensors") {
		t.Errorf("the error names %s, want step %s's checkpoint in %s", m[2], m[1], out)
	}
	if _, err := train.LoadCheckpoint(m[2]); err != nil {
		t.Error(err)
	}
	if _, err := train.LoadCheckpoint(filepath.Join(out, train.Latest)); err != nil {
		t.Error(err)
	}
}

// TestEvalClassesChanged: bt eval, taking the checkpoint's training data
// by default, refuses it when its class folders have changed since the
// checkpoint was trained (the labels would mean other classes), naming
// the classes; the same data named by the flags is evaluated.
func TestEvalClassesChanged(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{"train/ant", "train/bee", "val/ant", "val/bee"} {
		writeImages(t, filepath.Join(root, p), 8)
	}
	out := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(folderFlags("folder", root, "-steps", "2", "-out", out)); err != nil {
		t.Fatal(err)
	}
	ckpt := filepath.Join(out, "checkpoint.safetensors")
	evalArgs := []string{"-checkpoint", ckpt, "-eval-batch", "8", "knn"}
	if err := runEval(evalArgs); err != nil {
		t.Fatalf("the checkpoint's own data: %v", err)
	}
	for _, split := range []string{"train", "val"} {
		if err := os.Rename(filepath.Join(root, split, "ant"), filepath.Join(root, split, "cat")); err != nil {
			t.Fatal(err)
		}
	}
	err := runEval(evalArgs)
	if err == nil || !strings.Contains(err.Error(), "classes have changed") || !strings.Contains(err.Error(), "bee, cat") {
		t.Errorf("a renamed class folder gave %v, want a refusal naming the classes", err)
	}
	if err := runEval(append([]string{"-data", "folder", "-data-dir", root}, evalArgs...)); err != nil {
		t.Errorf("the same data named by -data-dir: %v", err)
	}
}
