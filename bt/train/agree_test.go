package train

import (
	"context"
	"errors"
	"fmt"
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
	} {
		for _, ranks := range []int{2, 3} {
			t.Run(fmt.Sprintf("%s/%d ranks", tc.name, ranks), func(t *testing.T) {
				bad := ranks - 1
				errs := make([]error, ranks)
				disttest.Run(ranks, func(comm dist.Comm) error {
					cfg, o := spreadConfig(loss.Auto), Options{Comm: comm}
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
// arrive stops the run, with a checkpoint, instead of waiting for ever.
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
	if !errors.Is(err, interrupt) || !strings.Contains(err.Error(), "stopped at step 0") {
		t.Fatalf("Execute: %v, want it stopped by the interrupt at step 0", err)
	}
	if _, err := LoadCheckpoint(filepath.Join(dir, Latest)); err != nil {
		t.Errorf("the stopped run's checkpoint: %v", err)
	}
}
