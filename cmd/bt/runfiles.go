package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/strictjson"
)

// runOutputs are the files a pretraining run writes into its directory
// besides its checkpoints, recorded there before they are written: only
// they are removed when the run is overwritten.
func runOutputs(ro runOptions) []string {
	files := []string{train.ConfigFile, train.RunFile, train.MetricsFile, "loss.png", "lr.png", "c_start.png", "c_end.png"}
	if ro.monitor.every > 0 {
		files = append(files, "knn.png")
	}
	return files
}

// continuesHere refuses to resume c into dir when dir holds another run: its
// config.json must be one c continues (the settings, save for the epochs,
// steps, workers and augmentation place). Checked before anything is
// written, so a checkpoint copied from one run into another's directory
// cannot replace that run's settings, checkpoints and metrics.
func continuesHere(dir string, c *train.Checkpoint) error {
	b, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("-resume: %w", err)
	}
	var there train.Config
	if err := strictjson.Decode(b, &there); err != nil {
		return fmt.Errorf("-resume %s: %s/config.json: %v", c.Path, dir, err)
	}
	if _, err := c.Continues(there); err != nil {
		return fmt.Errorf("-resume %s: %s holds another run (its config.json is not this checkpoint's run: %v); resume it in its own directory, or give -out a new one", c.Path, dir, err)
	}
	return nil
}

// interruptible is a context that the first SIGINT or SIGTERM ends, with
// the signal as its cause, for the run to finish its step and write a
// checkpoint; the signals' default handling then returns, so that a
// second Ctrl-C exits at once. stop releases the signals.
func interruptible() (ctx context.Context, stop func()) {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case s := <-sigs:
			signal.Stop(sigs)
			fmt.Fprintln(os.Stderr, "stopping after the step in flight, with a checkpoint (Ctrl-C again to exit at once)")
			cancel(fmt.Errorf("%v: %w", s, context.Canceled))
		case <-done:
		}
	}()
	return ctx, func() {
		close(done)
		signal.Stop(sigs)
		cancel(nil)
	}
}
