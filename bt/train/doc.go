// Package train pretrains a backbone with Barlow Twins. Config is a whole
// run (data, network, objective, optimiser, schedule, length) with the
// paper's defaults and validation; New builds a Run from it (model,
// objective, optimiser, loader, Trainer and Loop), Resume continues one
// from a Checkpoint, and Loop.Execute trains until its steps are done or
// its context ends, with hooks for logging and evaluation. A Recorder's
// hooks write a run's directory as bt pretrain does (metrics.jsonl, the
// curves, heat maps of C), Run.WriteSettings its config.json and
// run.json, and a Watch warns of a collapse. Checkpoints are safetensors
// with torchvision's names, checksummed, and store the Config.
package train
