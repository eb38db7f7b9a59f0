// Package bt is Barlow Twins, by concern:
//
//   - [github.com/bt-org/bt/bt/loss]: the objectives, the Barlow Twins loss
//     (both paths) and InfoNCE;
//   - [github.com/bt-org/bt/bt/optim]: LARS, SGD and AdamW, and the
//     learning-rate schedule;
//   - [github.com/bt-org/bt/bt/train]: the model, the trainer and its loop,
//     checkpoints, the memory plan, Config, which New turns into a run, and
//     the hooks that write a run's metrics, curves and heat maps (Recorder);
//   - [github.com/bt-org/bt/bt/eval]: kNN, the linear probe and fine-tuning,
//     on a run's data (Evaluate) or while it trains (Monitor);
//   - [github.com/bt-org/bt/bt/encoder]: a checkpoint loaded with its
//     preprocessing, to embed images.
//
// A program that trains:
//
//	cfg := train.DefaultConfig()
//	cfg.Steps = 1000
//	run, err := train.New(dev, cfg, train.Options{CheckpointDir: "runs/mine", CheckpointEvery: 500})
//	defer run.Release()
//	rec, err := train.NewRecorder(run, "runs/mine") // metrics.jsonl, loss.png, …
//	run.Loop.Hooks = append(run.Loop.Hooks, rec.Hooks()...)
//	err = rec.Finish(run.Loop.Execute(ctx))
package bt
