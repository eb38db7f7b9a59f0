package main

// Fault injection: bad flags, occupied and contended run directories,
// damaged checkpoints, broken images and kill -9, each tried as a user
// would, through the command line. The test binary runs bt itself where a
// separate process is the point (concurrent runs, kill -9): with
// BT_TEST_MAIN set, TestMain runs main instead of the tests.

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/rundir"
	"github.com/bt-org/bt/internal/serve"
)

func TestMain(m *testing.M) {
	if os.Getenv("BT_TEST_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// small is a pretraining run that takes a few seconds on lavapipe.
var small = []string{"-arch", "tiny", "-data", "synthetic", "-batch", "16", "-size", "16", "-projector", "64-64-64", "-workers", "2"}

func args(extra ...string) []string { return append(append([]string{}, small...), extra...) }

// btCommand starts the test binary as bt with a command and its args.
func btCommand(command string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], append([]string{command}, args...)...)
	cmd.Env = append(os.Environ(), "BT_TEST_MAIN=1")
	return cmd
}

// TestBadFlags: every out-of-range flag is refused, naming the flag, before
// anything is written.
func TestBadFlags(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-steps", "-1"}, "flag -steps"},
		{[]string{"-size", "-3"}, "flag -size"},
		{[]string{"-lambda", "-1"}, "flag -lambda"},
		{[]string{"-memory", "-1"}, "flag -memory"},
		{[]string{"-lr", "NaN"}, "flag -lr"},
		{[]string{"-wd", "Inf"}, "flag -wd"},
		{[]string{"-epochs", "0"}, "flag -epochs"},
		{[]string{"-batch", "1"}, "flag -batch"},
		{[]string{"-warmup", "-2"}, "flag -warmup"},
		{[]string{"-keep", "0"}, "flag -keep"},
		{[]string{"-max-bad-fraction", "2"}, "flag -max-bad-fraction"},
		{[]string{"-arch", "resnet51"}, "flag -arch"},
		{[]string{"-no-normalisation", "-feature-normalisation"}, "-feature-normalisation"},
		{[]string{"-lambda", "0.01", "-infonce", "0.1"}, "InfoNCE replaces"},
		{[]string{"-resume", "x", "-overwrite"}, "-overwrite and -resume"},
		{[]string{"extra"}, `unexpected argument "extra"`},
		{[]string{"-exchange", "broadcast"}, "flag -exchange"},
		{[]string{"-exchange", "gather"}, "-exchange gather: a run of one process"},
		{[]string{"-val-fraction", "1"}, "flag -val-fraction"},
		{[]string{"-val-seed", "3"}, "validation seed 3 without a validation fraction"},
	} {
		t.Run(strings.Join(c.args, " "), func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "run")
			err := runPretrain(append(args("-out", out, "-steps", "2"), c.args...))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("got %v, want an error naming %q", err, c.want)
			}
			if _, serr := os.Stat(out); !errors.Is(serr, os.ErrNotExist) {
				t.Errorf("the refused run left %s behind", out)
			}
		})
	}
}

// snapshot reads every file of dir.
func snapshot(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = b
	}
	return files
}

// TestOccupiedDir: a second run into a finished run's directory is refused
// and leaves the first run's files byte for byte as they were; -overwrite
// replaces it; a run that fails before its first step leaves nothing.
func TestOccupiedDir(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(args("-out", out, "-steps", "2")); err != nil {
		t.Fatal(err)
	}
	before := snapshot(t, out)
	err := runPretrain(args("-out", out, "-steps", "3"))
	if !errors.Is(err, rundir.ErrBusy) || !strings.Contains(err.Error(), "-out") {
		t.Fatalf("a second run into %s: %v, want it refused", out, err)
	}
	after := snapshot(t, out)
	if len(after) != len(before) {
		t.Fatalf("files before %d, after %d", len(before), len(after))
	}
	for name, b := range before {
		if !bytes.Equal(after[name], b) {
			t.Errorf("%s changed", name)
		}
	}
	if err := runPretrain(args("-out", out, "-steps", "3", "-overwrite")); err != nil {
		t.Fatal(err)
	}
	if c, err := train.LoadCheckpoint(filepath.Join(out, train.Latest)); err != nil || c.State.Step != 3 {
		t.Fatalf("after -overwrite: %v, want the new run's step-3 checkpoint", err)
	}
	// A run that fails before its first step (here: a batch larger than
	// the data) leaves no directory.
	fresh := filepath.Join(t.TempDir(), "never")
	if err := runPretrain(args("-out", fresh, "-batch", "100000")); err == nil {
		t.Fatal("a batch larger than the data set was accepted")
	}
	if _, err := os.Stat(fresh); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a run that never started left %s", fresh)
	}
}

// TestConcurrentRuns: two processes started into one directory at once;
// exactly one trains, the other is refused naming the holder.
func TestConcurrentRuns(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	var cmds [2]*exec.Cmd
	var logs [2]bytes.Buffer
	for i := range cmds {
		cmds[i] = btCommand("pretrain", args("-out", out, "-steps", "4")...)
		cmds[i].Stderr = &logs[i]
		if err := cmds[i].Start(); err != nil {
			t.Fatal(err)
		}
	}
	ok := 0
	for i, c := range cmds {
		if err := c.Wait(); err == nil {
			ok++
		} else if !strings.Contains(logs[i].String(), "in use") {
			t.Errorf("run %d failed for another reason: %v\n%s", i, err, logs[i].String())
		}
	}
	if ok != 1 {
		t.Fatalf("%d runs succeeded, want exactly 1\n%s\n%s", ok, logs[0].String(), logs[1].String())
	}
	rows := metricsSteps(t, filepath.Join(out, "metrics.jsonl"))
	if want := []int{1, 2, 3, 4}; !equalInts(rows, want) {
		t.Errorf("metrics steps %v, want %v from one run", rows, want)
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// metricsRows reads a metrics file's training rows (those with a loss).
func metricsRows(t *testing.T, path string) []map[string]float64 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var rows []map[string]float64
	for line := range bytes.Lines(b) {
		var all map[string]any
		if err := json.Unmarshal(line, &all); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		r := map[string]float64{} // the figures; "warnings" names alarms
		for k, v := range all {
			if f, ok := v.(float64); ok {
				r[k] = f
			}
		}
		if _, ok := r["loss"]; ok {
			rows = append(rows, r)
		}
	}
	return rows
}

func metricsSteps(t *testing.T, path string) []int {
	var steps []int
	for _, r := range metricsRows(t, path) {
		steps = append(steps, int(r["step"]))
	}
	return steps
}

// TestDivergedRunCheckpoint: a learning rate of 1e9 stops the run; the
// checkpoint its error names loads and holds only finite values.
func TestDivergedRunCheckpoint(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	// The warm-up's first steps train at finite rates and checkpoint;
	// then the weights overflow.
	err := runPretrain(args("-out", out, "-steps", "20", "-checkpoint-every", "2", "-lr", "1e9"))
	if !errors.Is(err, train.ErrNonFinite) {
		t.Fatalf("got %v, want the non-finite guard", err)
	}
	t.Log(err)
	m := regexp.MustCompile(`last good checkpoint is (\S+\.safetensors)`).FindStringSubmatch(err.Error())
	if m == nil {
		t.Fatalf("the error names no checkpoint: %v", err)
	}
	if _, err := train.LoadCheckpoint(m[1]); err != nil {
		t.Fatalf("the named checkpoint: %v", err)
	}
	// The metrics end with a row that says why, the step after the last
	// one logged, so that bt serve shows the run as diverged.
	b, rerr := os.ReadFile(filepath.Join(out, "metrics.jsonl"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	var last, before struct {
		Step  int
		Error string
	}
	if len(lines) < 2 || json.Unmarshal([]byte(lines[len(lines)-1]), &last) != nil || json.Unmarshal([]byte(lines[len(lines)-2]), &before) != nil {
		t.Fatalf("metrics.jsonl: %q", lines)
	}
	if !strings.Contains(last.Error, "non-finite") || before.Error != "" || last.Step != before.Step+1 {
		t.Errorf("the metrics end with %q after %q, want an error row at the next step", lines[len(lines)-1], lines[len(lines)-2])
	}
	srv, err := serve.New(serve.Options{Root: filepath.Dir(out)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	rec := httptest.NewRecorder()
	srv.ServeHTTP(rec, httptest.NewRequest("GET", "http://127.0.0.1/api/run?id=run", nil))
	var run serve.Run
	if err := json.Unmarshal(rec.Body.Bytes(), &run); err != nil || run.State != serve.Diverged {
		t.Errorf("bt serve shows the run as %q (%s), want %q: %s", run.State, run.Reason, serve.Diverged, rec.Body)
	}
	// LoadCheckpoint verifies the checksum; SaveCheckpoint refused
	// non-finite values, and the bt package's guard test reads each one.
	if err := runExport([]string{"-checkpoint", m[1], "-out", filepath.Join(t.TempDir(), "b.safetensors")}); err != nil {
		t.Fatalf("exporting the named checkpoint: %v", err)
	}
}

// TestDamagedCheckpoint: a misspelt key or a changed byte anywhere in a
// checkpoint is refused by -resume, eval and export, saying why.
func TestDamagedCheckpoint(t *testing.T) {
	out := filepath.Join(t.TempDir(), "run")
	if err := runPretrain(args("-out", out, "-steps", "2")); err != nil {
		t.Fatal(err)
	}
	good, err := os.ReadFile(filepath.Join(out, train.Latest))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name   string
		damage func([]byte) []byte
		want   string
	}{
		{"misspelt settings key", func(b []byte) []byte {
			return bytes.Replace(b, []byte(`\"batch\"`), []byte(`\"baWch\"`), 1)
		}, "does not match"},
		{"changed weight byte", func(b []byte) []byte {
			b[len(b)-5] ^= 0x10
			return b
		}, "does not match"},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "checkpoint.safetensors")
			bad := c.damage(append([]byte{}, good...))
			if bytes.Equal(bad, good) {
				t.Fatal("the damage changed nothing")
			}
			if err := os.WriteFile(path, bad, 0o644); err != nil {
				t.Fatal(err)
			}
			for _, run := range []struct {
				what string
				err  error
			}{
				{"resume", runPretrain([]string{"-resume", path, "-steps", "4"})},
				{"eval", runEval([]string{"-checkpoint", path, "knn"})},
				{"export", runExport([]string{"-checkpoint", path, "-out", filepath.Join(dir, "b.safetensors")})},
			} {
				if run.err == nil || !strings.Contains(run.err.Error(), c.want) {
					t.Errorf("%s: %v, want an error saying %q", run.what, run.err, c.want)
				}
			}
		})
	}
}

// TestKillAndResume: a run killed with SIGKILL and resumed from its last
// checkpoint gives the uninterrupted run's losses and kNN monitor, its
// metrics.jsonl has every step once, and it is kept as it was started
// (checkpoint interval, how many kept, the monitor) without being told
// again.
func TestKillAndResume(t *testing.T) {
	const steps, every = 24, 4
	keeping := []string{"-steps", "24", "-checkpoint-every", "4", "-keep", "2", "-knn-every", "4", "-knn-images", "100"}
	whole := filepath.Join(t.TempDir(), "whole")
	if err := runPretrain(args(append([]string{"-out", whole}, keeping...)...)); err != nil {
		t.Fatal(err)
	}
	want := metricsRows(t, filepath.Join(whole, "metrics.jsonl"))

	out := filepath.Join(t.TempDir(), "killed")
	killMidRun(t, btCommand("pretrain", args(append([]string{"-out", out}, keeping...)...)...), out, 6)
	c, err := train.LoadCheckpoint(filepath.Join(out, train.Latest))
	if err != nil {
		t.Fatal(err)
	}
	if c.State.Step >= steps {
		t.Fatalf("killed at the end (checkpoint at step %d)", c.State.Step)
	}
	if err := runPretrain([]string{"-resume", filepath.Join(out, train.Latest), "-workers", "2"}); err != nil {
		t.Fatal(err)
	}
	got := metricsRows(t, filepath.Join(out, "metrics.jsonl"))
	if len(got) != len(want) {
		t.Fatalf("resumed metrics have %d rows, want %d (one per step)", len(got), len(want))
	}
	for i := range got {
		if got[i]["step"] != float64(i+1) || got[i]["loss"] != want[i]["loss"] {
			t.Errorf("row %d: step %v loss %v, want step %d loss %v", i, got[i]["step"], got[i]["loss"], i+1, want[i]["loss"])
		}
		knn, ran := got[i]["knn20"]
		if ran != ((i+1)%every == 0) || knn != want[i]["knn20"] {
			t.Errorf("row %d: kNN %v (monitored %v), want the uninterrupted run's %v every %d steps", i, knn, ran, want[i]["knn20"], every)
		}
	}
	// -keep 2 and -checkpoint-every 4 held after the resume: the defaults
	// (3 kept, every 500) would leave the killed run's checkpoint.
	var ckpts []string
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "checkpoint-") {
			ckpts = append(ckpts, e.Name())
		}
	}
	if fmt.Sprint(ckpts) != "[checkpoint-20.safetensors checkpoint-24.safetensors]" {
		t.Errorf("checkpoints after the resume: %v, want those of steps 20 and 24", ckpts)
	}
	t.Logf("killed after the checkpoint at step %d; %d rows match", c.State.Step, len(got))
}

// TestRunKeeping: a resumed run takes from run.json the run options not
// given again; a damaged run.json is refused, naming it, and a run from
// before run.json keeps the defaults.
func TestRunKeeping(t *testing.T) {
	type kept struct{ every, keep, knnEvery, knnImages int }
	defaults := kept{500, 3, 0, 5000}
	full := `{"checkpoint_every": 100, "keep": 2, "knn_every": 234, "knn_images": 1000}`
	for _, tc := range []struct {
		name  string
		file  string   // "" writes none
		given []string // flags given again with -resume
		want  kept
		err   string
	}{
		{"kept", full, nil, kept{100, 2, 234, 1000}, ""},
		{"given again", full, []string{"-knn-every", "0", "-keep", "3"}, kept{100, 3, 0, 1000}, ""},
		// -checkpoint-every 0 (at the end only) is a value the flag takes.
		{"checkpoint at the end", `{"checkpoint_every": 0, "keep": 1, "knn_every": 0, "knn_images": 1}`, nil, kept{0, 1, 0, 1}, ""},
		{"none", "", nil, defaults, ""},
		{"damaged", `{"checkpoint_every": 100`, nil, defaults, "run.json"},
		{"unknown field", `{"checkpoint_every": 100, "keep": 2, "knn_every": 0, "knn_images": 1, "every": 3}`, nil, defaults, "every"},
		{"out of range", `{"checkpoint_every": 100, "keep": 0, "knn_every": 0, "knn_images": 1}`, nil, defaults, "keep 0: must be at least 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), train.RunFile)
			if tc.file != "" {
				if err := os.WriteFile(path, []byte(tc.file), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			cfg := train.DefaultConfig()
			fs, ro := pretrainFlags(&cfg)
			if err := fs.Parse(tc.given); err != nil {
				t.Fatal(err)
			}
			explicit := map[string]bool{}
			fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
			err := keeping(path, fs, explicit)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one naming %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := (kept{ro.every, ro.keep, ro.monitor.every, ro.monitor.trainN}); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// killMidRun starts cmd, a run into dir, and kills it (SIGKILL: nothing
// of it runs after) once it has written a checkpoint and logged rows steps.
func killMidRun(t *testing.T, cmd *exec.Cmd, dir string, rows int) {
	t.Helper()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		b, _ := os.ReadFile(filepath.Join(dir, "metrics.jsonl"))
		_, ckErr := os.Stat(filepath.Join(dir, train.Latest))
		if ckErr == nil && bytes.Count(b, []byte("\n")) >= rows {
			break
		}
		if time.Now().After(deadline) {
			cmd.Process.Kill()
			t.Fatalf("the run did not reach step %d in time", rows)
		}
		time.Sleep(5 * time.Millisecond)
	}
	cmd.Process.Kill()
	if err := cmd.Wait(); err == nil {
		t.Fatal("the run finished before it could be killed; the test proves nothing")
	}
}

// writeImages fills dir/class with n distinct 20×20 PNGs.
func writeImages(t *testing.T, dir string, n int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		img := image.NewRGBA(image.Rect(0, 0, 20, 20))
		for p := range 400 {
			img.Set(p%20, p/20, color.RGBA{uint8(i * 7), uint8(p), uint8(i * p), 255})
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "img"+string(rune('a'+i%26))+string(rune('a'+i/26))+".png"), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestBrokenImages: a folder with broken files stops the run at the first
// one, naming it; -skip-bad-images trains on the rest and counts them.
func TestBrokenImages(t *testing.T) {
	root := t.TempDir()
	writeImages(t, filepath.Join(root, "x"), 40)
	for name, data := range map[string]string{"broken.jpg": "\xff\xd8\xff\xe0 truncated", "empty.png": "", "x.jpg": "not an image"} {
		if err := os.WriteFile(filepath.Join(root, "x", name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	flags := []string{"-arch", "tiny", "-data", "folder-unlabeled", "-data-dir", root, "-augment", "cifar", "-size", "16",
		"-batch", "8", "-projector", "32-32-32", "-workers", "2", "-steps", "6"}
	out := filepath.Join(t.TempDir(), "run")
	err := runPretrain(append(flags, "-out", out))
	if err == nil || !regexp.MustCompile(`x[/\\](broken\.jpg|empty\.png|x\.jpg)`).MatchString(err.Error()) {
		t.Fatalf("got %v, want the run stopped naming a broken file", err)
	}
	skip := filepath.Join(t.TempDir(), "skip")
	if err := runPretrain(append(flags, "-out", skip, "-skip-bad-images", "-max-bad-fraction", "0.5")); err != nil {
		t.Fatal(err)
	}
	rows := metricsRows(t, filepath.Join(skip, "metrics.jsonl"))
	if n := rows[len(rows)-1]["bad_images"]; n != 3 {
		t.Errorf("metrics count %v bad images, want 3", n)
	}
}

// TestInit: -init starts a run from an exported backbone: with its one
// step at warm-up's zero rate, the run's first checkpoint holds the
// export's convolution weights; a backbone of another network is refused
// by name.
func TestInit(t *testing.T) {
	first := filepath.Join(t.TempDir(), "first")
	if err := runPretrain(args("-out", first, "-steps", "2")); err != nil {
		t.Fatal(err)
	}
	exported := filepath.Join(t.TempDir(), "backbone.safetensors")
	if err := runExport([]string{"-checkpoint", filepath.Join(first, train.Latest), "-out", exported}); err != nil {
		t.Fatal(err)
	}
	second := filepath.Join(t.TempDir(), "second")
	if err := runPretrain(args("-out", second, "-steps", "1", "-warmup", "1steps", "-seed", "9", "-init", exported)); err != nil {
		t.Fatal(err)
	}
	a, err := train.LoadCheckpoint(exported)
	if err != nil {
		t.Fatal(err)
	}
	b, err := train.LoadCheckpoint(filepath.Join(second, train.Latest))
	if err != nil {
		t.Fatal(err)
	}
	wa, wb := a.Tensor("conv1.weight"), b.Tensor("backbone.conv1.weight")
	if len(wa) == 0 || !slices.Equal(wa, wb) {
		t.Errorf("the run did not start from the export's conv1 (%d values, equal %v)", len(wa), slices.Equal(wa, wb))
	}
	err = runPretrain(args("-out", filepath.Join(t.TempDir(), "third"), "-steps", "1", "-arch", "resnet18", "-init", exported))
	if err == nil || !strings.Contains(err.Error(), "holds a tiny backbone") {
		t.Errorf("a tiny backbone into a resnet18 run: %v", err)
	}
	if err := runPretrain([]string{"-resume", exported}); err == nil || !strings.Contains(err.Error(), "-resume "+exported) || !strings.Contains(err.Error(), "no run to continue") {
		t.Errorf("resuming a backbone export: %v", err)
	}
}
