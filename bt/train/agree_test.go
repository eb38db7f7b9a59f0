package train

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/loss"
	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/internal/disttest"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/pipeline"
)

// TestBuildFailureAgreed: whatever stops one rank of 2 or 3 from building
// the run (data it cannot open, a bad setting, too little memory, other
// weights than rank 0's) stops every rank with that rank's error, through
// the same collectives on every rank: none is left waiting in another.
// disttest's group refuses ranks that call different collectives, the
// hang the same fault gives over MPI.
func TestBuildFailureAgreed(t *testing.T) {
	devs := gputest.Devices(t, 3)
	// Every rank reads a folder; the failing rank's holds fewer images.
	all, fewer := t.TempDir(), t.TempDir()
	writePNGs(t, all, 30)
	writePNGs(t, fewer, 24)
	for _, tc := range []struct {
		name string
		// breaks the failing rank's configuration or options
		spoil func(cfg *Config, o *Options)
		want  string
	}{
		{"missing data", func(cfg *Config, _ *Options) {
			cfg.Data.Name, cfg.Data.Dir = "folder-unlabeled", "/nonexistent/images"
		}, "/nonexistent/images"},
		{"bad setting", func(cfg *Config, _ *Options) { cfg.Loss.Lambda = -1 }, "λ -1"},
		{"too little memory", func(_ *Config, o *Options) { o.MemoryBudget = 1 << 10 }, "does not fit"},
		{"other weights", func(cfg *Config, _ *Options) { cfg.Model.Seed++ }, "other weights than rank 0"},
		{"other data", func(cfg *Config, _ *Options) { cfg.Data.Dir = fewer }, "data (24 images, 0 classes"},
	} {
		for _, ranks := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/%d ranks", tc.name, ranks), func(t *testing.T) {
				bad := ranks - 1
				errs := make([]error, ranks)
				disttest.Run(ranks, func(comm dist.Comm) error {
					cfg, o := spreadConfig(loss.Auto), Options{Comm: comm}
					cfg.Data.Name, cfg.Data.Dir, cfg.Data.Augment = "folder-unlabeled", all, "cifar"
					if comm.Rank() == bad {
						tc.spoil(&cfg, &o)
					}
					run, err := New(devs[comm.Rank()], cfg, o)
					if err == nil {
						run.Release()
					}
					errs[comm.Rank()] = err
					return nil
				})
				for r, err := range errs {
					var re *dist.RankError
					if !errors.As(err, &re) || re.Rank != bad || !strings.Contains(err.Error(), tc.want) {
						t.Errorf("rank %d: %v, want rank %d's error naming %q", r, err, bad, tc.want)
					}
				}
			})
		}
	}
}

// stuckData is a dataset whose every Load blocks until release is closed,
// as a read from a named pipe or a stuck mount does; entered hears of the
// first.
type stuckData struct {
	pipeline.Dataset
	entered, release chan struct{}
}

func (s *stuckData) Load(i int, dst *pipeline.Image) error {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	<-s.release
	return s.Dataset.Load(i, dst)
}

// TestStopWhileLoading: Ctrl-C while the loop waits for images that never
// arrive stops the run instead of waiting for ever (at step 0, with no
// checkpoint: there is nothing to keep).
func TestStopWhileLoading(t *testing.T) {
	dir := t.TempDir()
	s := newSmallRun(t, 1, 0, dir, 0)
	syn, err := pipeline.NewSynthetic(pipeline.SyntheticConfig{Count: 320, Size: 16, Channels: 1, Classes: 10, Seed: 3})
	if err != nil {
		t.Fatal(err)
	}
	ds := &stuckData{Dataset: syn, entered: make(chan struct{}, 1), release: make(chan struct{})}
	defer close(ds.release)
	s.loader.Close()
	aug, err := pipeline.Preset("fashion-mnist")
	if err != nil {
		t.Fatal(err)
	}
	aug.A.Size, aug.B.Size = 16, 16
	if s.loader, err = pipeline.NewLoader(ds, aug, pipeline.LoaderConfig{BatchSize: smallBatch, Workers: 2, DropLast: true}); err != nil {
		t.Fatal(err)
	}
	s.loop.Loader = s.loader
	ctx, cancel := context.WithCancelCause(context.Background())
	interrupt := errors.New("interrupt")
	go func() {
		<-ds.entered
		cancel(interrupt)
	}()
	err = s.loop.Execute(ctx)
	if !errors.Is(err, interrupt) || !strings.Contains(err.Error(), "stopped at step 0") || !strings.Contains(err.Error(), "no checkpoint was written") {
		t.Fatalf("Execute: %v, want it stopped by the interrupt at step 0, with no checkpoint", err)
	}
}

// writePNGs writes n distinct 20×20 PNGs into dir.
func writePNGs(t *testing.T, dir string, n int) {
	t.Helper()
	for i := range n {
		img := image.NewGray(image.Rect(0, 0, 20, 20))
		for p := range img.Pix {
			img.Pix[p] = uint8(p*i + i)
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("%02d.png", i)), b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCheckpointWriteFailure: a checkpoint that cannot be written (a full
// disk; here its name is taken by a folder) stops the run with an error
// naming the step it failed at and the checkpoint to resume from.
func TestCheckpointWriteFailure(t *testing.T) {
	dir := t.TempDir()
	s := newSmallRun(t, 1, 0, dir, 2)
	if err := os.MkdirAll(filepath.Join(dir, "checkpoint-4.safetensors", "taken"), 0o755); err != nil {
		t.Fatal(err)
	}
	err := s.loop.Execute(context.Background())
	want := "the checkpoint of step 4 was not written"
	if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "resume from "+filepath.Join(dir, "checkpoint-2.safetensors")+" (step 2)") {
		t.Fatalf("got %v, want %q and the step-2 checkpoint named", err, want)
	}
}
