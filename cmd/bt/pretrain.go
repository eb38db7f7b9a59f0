package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"golang.org/x/term"

	"github.com/bt-org/bt/bt/eval"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/enum"
	"github.com/bt-org/bt/internal/rundir"
	"github.com/bt-org/bt/internal/strictjson"
	"github.com/bt-org/bt/pipeline"
)

func runPretrain(args []string) (err error) {
	cfg, ro, err := parsePretrain(args)
	if err != nil {
		return err
	}
	comm, err := dist.Open()
	if err != nil {
		return err
	}
	defer comm.Close()
	if comm.Size() > 1 {
		ro.comm = comm
	}
	if ro.trace.path != "" && comm.Size() > 1 {
		return errors.New("-trace: a run over several processes is not traced; trace one process")
	}
	// A rank that cannot open its adapter, or take the tuning it is given,
	// stops every rank, as one that cannot build the run does, through the
	// same collectives.
	var d *gpu.Device
	adapter, err := rankAdapter(*ro.adapter, comm)
	if err == nil {
		d, err = openDevice(adapter)
	}
	if err == nil {
		err = ro.tune.apply(d, os.Stderr)
	}
	if err = dist.Agree(comm, err); err != nil {
		if d != nil {
			d.Release()
		}
		return reportOnce(comm, err)
	}
	defer d.Release()
	finish, err := ro.trace.start(d)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, finish()) }()
	// Ctrl-C (or SIGTERM from a scheduler) finishes the step in flight,
	// writes a checkpoint and exits; a second one kills as usual.
	ctx, stop := interruptible()
	defer stop()
	res, err := pretrain(ctx, d, cfg, ro, os.Stderr)
	if err != nil {
		return reportOnce(comm, err)
	}
	if res != nil { // nil on ranks other than 0, which keep nothing
		res.release()
	}
	return nil
}

// parsePretrain maps pretrain's flags (after a -config file's settings or
// a recipe's) onto a training configuration and the run's options.
func parsePretrain(args []string) (train.Config, runOptions, error) {
	cfg := train.DefaultConfig()
	fs, ro := pretrainFlags(&cfg)
	if err := fs.Parse(args); err != nil {
		return cfg, *ro, err
	}
	explicit := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { explicit[f.Name] = true })
	// The settings the flags given adjust: a -config file's or a recipe's
	// (with -resume, resolve takes the checkpoint's).
	if ro.resume == "" {
		var base train.Config
		var recipe train.Recipe
		switch {
		case ro.config != "" && explicit["recipe"]:
			return cfg, *ro, errors.New("-recipe and -config: a run's config.json holds its whole recipe; flags given beside it change single settings")
		case ro.config != "":
			b, err := os.ReadFile(ro.config)
			if err != nil {
				return cfg, *ro, fmt.Errorf("-config: %w", err)
			}
			if err := strictjson.Decode(b, &base); err != nil {
				return cfg, *ro, fmt.Errorf("-config %s: %v", ro.config, err)
			}
		default:
			base, recipe = recipeConfig(ro.recipe, explicit["steps"])
		}
		cfg = base
		fs, ro = pretrainFlags(&cfg)
		if err := fs.Parse(args); err != nil {
			return cfg, *ro, err
		}
		ro.recipe = recipe
	}
	if fs.NArg() > 0 {
		return cfg, *ro, fmt.Errorf("unexpected argument %q: pretrain takes only flags", fs.Arg(0))
	}
	if ro.config == "" || explicit["seed"] {
		cfg.Model.Seed = cfg.Seed
	}
	if err := ro.resolve(&cfg, fs, explicit); err != nil {
		return cfg, *ro, err
	}
	return cfg, *ro, nil
}

// pretrainFlags is pretrain's flag set over cfg.
func pretrainFlags(cfg *train.Config) (*flag.FlagSet, *runOptions) {
	fs, adapter := newFlags("pretrain", "Pretrains a backbone with Barlow Twins and writes checkpoints, metrics.jsonl, config.json and plots into -out.")
	ro := &runOptions{}
	groups := registerConfig(fs, cfg, &ro.recipe)
	groups = append(groups, ro.register(fs))
	ro.trace.register(fs, true)
	groups = append(groups, flagGroup{"trace", []string{"trace", "trace-steps"}})
	setGroups(fs, groups)
	ro.adapter = adapter
	ro.tune.register(fs)
	return fs, ro
}

// runOptions say where a run goes and how it is kept, as opposed to what it
// trains (train.Config).
type runOptions struct {
	out       string
	overwrite bool
	every     int
	keep      int
	resume    string
	init      string
	config    string
	recipe    train.Recipe // -recipe; once parsed, the recipe the run started from ("" for -config and -resume)
	memoryGiB float64
	ckpt      *train.Checkpoint // the loaded -resume file
	monitor   knnMonitor
	// auto picks the next free directory named after out (runs/pretrain,
	// runs/pretrain-2, …): the user named none.
	auto    bool
	adapter *string    // the -adapter flag
	tune    tuneSource // the -tune flag
	comm    dist.Comm  // the ranks of a run over several processes; nil for one
	// exchange is -exchange: "auto", or a train.Exchange to insist on.
	exchange string
	ready    *bool // rank 0: set once every rank has heard that the run is set up
	trace    traceFlags
}

func (ro *runOptions) register(fs *flag.FlagSet) flagGroup {
	fs.StringVar(&ro.out, "out", "runs/pretrain", "run directory (default: runs/pretrain, or the next free runs/pretrain-N; with -resume, the checkpoint's directory)")
	fs.BoolVar(&ro.overwrite, "overwrite", false, "replace the run in -out (by default a directory that holds another run is refused)")
	// Defaults are set before their flags, so that -h shows them.
	ro.every, ro.keep, ro.monitor.trainN = 500, train.DefaultKeep, 5000
	fs.Var(intFlag{&ro.every, 0}, "checkpoint-every", "steps between checkpoints (one is always written at the end, and one when a bad image stops the run)")
	fs.Var(intFlag{&ro.keep, 1}, "keep", "checkpoints to keep (checkpoint-STEP.safetensors; checkpoint.safetensors is always the newest)")
	fs.StringVar(&ro.resume, "resume", "", "checkpoint to continue from exactly; its settings are the run's (only -epochs, -steps, -workers and -augment-on may change), and so, unless given, are its -checkpoint-every, -keep, -knn-every and -knn-images (run.json)")
	fs.StringVar(&ro.init, "init", "", "start from this backbone: a bt checkpoint or export, or a torchvision state dict converted by tools/reference/torchvision_to_safetensors.py")
	fs.StringVar(&ro.config, "config", "", "a run's config.json to start from; flags given beside it override its settings")
	fs.Var(floatFlag[float64]{p: &ro.memoryGiB, min: 0, open: false}, "memory", "device memory to plan for, in GiB (WebGPU does not report it; 0 checks only the adapter's per-buffer limit)")
	fs.Var(intFlag{&ro.monitor.every, 0}, "knn-every", "steps between kNN accuracy checks (0: never), on the validation split with -val-fraction, else on the test split; results go to metrics.jsonl")
	fs.Var(intFlag{&ro.monitor.trainN, 1}, "knn-images", "training images the kNN monitor samples (validation or test images: a fifth of that)")
	ro.exchange = "auto"
	fs.Var(choiceFlag[string]{&ro.exchange, []string{"auto", string(train.Gather), string(train.ReduceC)}}, "exchange",
		"over several processes (mpirun), how the ranks share the loss: gather the embeddings (2·batch·D values per step), reduce-c all-reduces C (D²; the paper's loss on the materialised path only), auto the fewer bytes")
	return flagGroup{"run", []string{"out", "overwrite", "checkpoint-every", "keep", "resume", "init", "config", "memory", "knn-every", "knn-images", "adapter", "exchange"}}
}

// resumable are the flags a resumed run may take: they extend it or only
// change how it is computed, not what it trains.
var resumable = map[string]bool{"epochs": true, "steps": true, "workers": true, "augment-on": true}

// resolve checks the run options against each other and, with -resume,
// replaces cfg by the checkpoint's configuration (extended by the flags
// that may extend it), all before anything is opened or written. fs holds
// the flags parsed into ro.
func (ro *runOptions) resolve(cfg *train.Config, fs *flag.FlagSet, explicit map[string]bool) error {
	if ro.overwrite && ro.resume != "" {
		return errors.New("-overwrite and -resume: a run is either replaced or continued")
	}
	if ro.config != "" && ro.resume != "" {
		return errors.New("-config and -resume: a resumed run takes its checkpoint's settings")
	}
	if ro.init != "" && ro.resume != "" {
		return errors.New("-init and -resume: a resumed run continues from its checkpoint's weights")
	}
	ro.auto = !explicit["out"] && ro.resume == ""
	if ro.resume == "" {
		return cfg.Validate()
	}
	if err := keeping(filepath.Join(filepath.Dir(ro.resume), train.RunFile), fs, explicit); err != nil {
		return err
	}
	for name := range explicit {
		if configFlag(name) && !resumable[name] {
			return fmt.Errorf("-%s: a resumed run keeps its checkpoint's settings; only -epochs, -steps, -workers and -augment-on may be given with -resume", name)
		}
	}
	c, err := train.LoadCheckpoint(ro.resume)
	if err != nil {
		return err
	}
	given := *cfg
	*cfg = c.State.Config
	if explicit["epochs"] {
		cfg.Epochs = given.Epochs
	}
	if explicit["steps"] {
		cfg.Steps = given.Steps
	}
	if explicit["workers"] {
		cfg.Data.Workers = given.Data.Workers
	}
	if explicit["augment-on"] {
		cfg.Data.AugmentOn = given.Data.AugmentOn
	}
	// Refused here, before anything is written, for what Resume would
	// refuse: a file that holds no run (a backbone export).
	if _, err := c.Continues(*cfg); err != nil {
		return fmt.Errorf("-resume %s: %w", ro.resume, err)
	}
	ro.ckpt = c
	if !explicit["out"] {
		ro.out = filepath.Dir(ro.resume)
	}
	return continuesHere(ro.out, c)
}

// keeping sets the flags of fs not given in explicit to their values in
// path, a run.json, through the flags themselves, so that a value a flag
// would refuse is refused the same way; a run written before run.json
// existed has none and keeps the defaults.
func keeping(path string, fs *flag.FlagSet, explicit map[string]bool) error {
	k, ok, err := train.ReadKeeping(path)
	if err != nil {
		return fmt.Errorf("-resume: %w", err)
	}
	if !ok {
		return nil
	}
	for _, f := range []struct {
		flag, field string
		v           int
	}{
		{"checkpoint-every", "checkpoint_every", k.CheckpointEvery},
		{"keep", "keep", k.Keep},
		{"knn-every", "knn_every", k.KNNEvery},
		{"knn-images", "knn_images", k.KNNImages},
	} {
		if explicit[f.flag] {
			continue
		}
		if err := fs.Set(f.flag, strconv.Itoa(f.v)); err != nil {
			return fmt.Errorf("-resume: %s: %s %d: %v", path, f.field, f.v, err)
		}
	}
	return nil
}

// configFlag reports whether a flag sets the training configuration.
var configFlag = func() func(string) bool {
	fs := flag.NewFlagSet("names", flag.ContinueOnError)
	var c train.Config
	var recipe train.Recipe
	names := map[string]bool{}
	for _, g := range registerConfig(fs, &c, &recipe) {
		for _, n := range g.flags {
			names[n] = true
		}
	}
	return func(name string) bool { return names[name] }
}()

// pretrainResult is a finished run, kept for evaluation (bt demo).
type pretrainResult struct {
	run       *train.Run
	cfg       train.Config
	dir       string
	owner     *rundir.Dir // held until release
	lossStart float64     // mean of the first tenth of the losses
	lossEnd   float64     // mean of the last tenth
	pairsPerS float64
	steps     int
	elapsed   time.Duration
}

func (r *pretrainResult) release() {
	r.run.Release()
	r.owner.Close()
}

// knnMonitor is how often the kNN monitor (eval.Monitor) checks the
// backbone, and on how many training images.
type knnMonitor struct {
	every, trainN int // trainN training images, a fifth of that test images
}

// pretrain builds (or resumes) a run, claims its directory and trains,
// leaving its outputs there. log receives progress.
func pretrain(ctx context.Context, d *gpu.Device, cfg train.Config, ro runOptions, log io.Writer) (res *pretrainResult, err error) {
	run, err := newRun(d, cfg, ro, log)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			run.Release()
		}
	}()
	if ro.comm != nil {
		// Until the ranks train, rank 0 alone sets up the run's directory
		// and outputs; whatever stops it first stops every rank with its
		// message, which the others wait for in Agree.
		ready := false
		defer func() {
			if !ready {
				dist.Agree(ro.comm, err)
			}
		}()
		if ro.comm.Rank() > 0 {
			return nil, follow(ctx, run, ro, &ready)
		}
		ro.ready = &ready
	}
	if ro.init != "" {
		if err := initBackbone(run, ro.init); err != nil {
			return nil, err
		}
	}
	owner, err := ro.openDir()
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			owner.Close()
		}
	}()
	rec, progress, err := record(d, run, owner, ro, log)
	if err != nil {
		return nil, err
	}
	if ro.comm != nil {
		*ro.ready = true
		if err := dist.Agree(ro.comm, nil); err != nil {
			rec.Close()
			return nil, err
		}
		describeRanks(log, run, ro.comm)
	}
	start := run.Trainer.Step
	err = run.Loop.Execute(ctx)
	progress.done()
	err = rec.Finish(err)
	if run.Trainer.Step > start { // a run that has trained keeps what it wrote
		owner.Keep()
	}
	if err != nil {
		return nil, err
	}
	summarise(log, run, owner.Path, rec.History)
	h := rec.History
	res = &pretrainResult{run: run, cfg: run.Config, dir: owner.Path, owner: owner, steps: len(h.Loss), elapsed: h.Last.Elapsed, pairsPerS: h.Last.PairsPerS}
	res.lossStart, res.lossEnd = lossEnds(h.Loss)
	return res, nil
}

// newRun builds the run of cfg, or continues the checkpoint of -resume.
func newRun(d *gpu.Device, cfg train.Config, ro runOptions, log io.Writer) (*train.Run, error) {
	opts := train.Options{CheckpointEvery: ro.every, Keep: ro.keep, MemoryBudget: int64(ro.memoryGiB * (1 << 30)),
		OnSkip: func(s pipeline.Skip) { fmt.Fprintf(log, "skipped  %v\n", s.Err) }}
	opts.Comm = ro.comm
	if ro.exchange != "" && ro.exchange != "auto" {
		if ro.comm == nil {
			return nil, fmt.Errorf("-exchange %s: a run of one process exchanges nothing; the flag is for runs under mpirun or srun", ro.exchange)
		}
		opts.Exchange = train.Exchange(ro.exchange)
	}
	if ro.ckpt != nil {
		return train.Resume(d, ro.ckpt, cfg, opts)
	}
	return train.New(d, cfg, opts)
}

// record starts the run's directory (its settings written, its header
// printed) and installs on its loop the hooks that write its outputs
// there and show its progress on log: the collapse Watch, the kNN
// monitor, the Recorder's hooks, then the progress line.
func record(d *gpu.Device, run *train.Run, owner *rundir.Dir, ro runOptions, log io.Writer) (*train.Recorder, *progress, error) {
	dir := owner.Path
	run.Loop.CheckpointDir = dir
	if err := owner.Start(); err != nil {
		return nil, nil, err
	}
	if err := owner.Record(runOutputs(ro)...); err != nil {
		return nil, nil, err
	}
	k := train.Keeping{CheckpointEvery: ro.every, Keep: ro.keep, KNNEvery: ro.monitor.every, KNNImages: ro.monitor.trainN}
	if err := run.WriteSettings(dir, k); err != nil {
		return nil, nil, err
	}
	header(log, d, run, ro, dir)
	rec, err := train.NewRecorder(run, dir)
	if err != nil {
		return nil, nil, err
	}
	progress := newProgress(log, run.Loop.Steps()-run.Trainer.Step)
	rec.Watch = train.NewWatch(func(w train.Warning) { progress.note(w.String()) })
	hooks := []train.Hook{rec.Watch.Hook()}
	if ro.monitor.every > 0 {
		split := run.Config.Data.ChoiceSplit()
		hooks = append(hooks, eval.Monitor{Every: ro.monitor.every, TrainImages: ro.monitor.trainN, Report: func(step int, acc []float64) error {
			fmt.Fprintf(log, "kNN      step %d: k=20 %.2f%%, k=200 %.2f%% (%s split)\n", step, 100*acc[0], 100*acc[1], split)
			rec.KNN(step, acc)
			return nil
		}}.Hook(d, run))
	}
	hooks = append(hooks, rec.Hooks()...)
	run.Loop.Hooks = append(hooks, train.Hook{Name: "progress", Fn: func(_ *train.Loop, ev train.Event) error {
		progress.update(ev)
		return nil
	}})
	run.Loop.TraceSteps = ro.trace.window
	return rec, progress, nil
}

// header prints the run's start-up lines: its recipe, settings and
// directory, and where a resumed run continues.
func header(log io.Writer, d *gpu.Device, run *train.Run, ro runOptions, dir string) {
	if ro.recipe != "" {
		fmt.Fprintf(log, "recipe   %s (-recipe: %s)\n", ro.recipe, enum.Join(train.Recipes(), ", "))
	}
	fmt.Fprintf(log, "%s\nrun      %s\n", run.Describe(d), dir)
	if start := run.Trainer.Step; start > 0 {
		monitor := "no kNN monitor"
		if ro.monitor.every > 0 {
			monitor = fmt.Sprintf("kNN every %d", ro.monitor.every)
		}
		fmt.Fprintf(log, "resuming from %s at step %d (checkpoints every %d steps, %d kept; %s)\n", ro.resume, start, ro.every, ro.keep, monitor)
	}
}

// describeRanks prints how a run over several processes shares its batch,
// its BatchNorm statistics and its loss.
func describeRanks(log io.Writer, run *train.Run, comm dist.Comm) {
	cfg := run.Config
	mib := func(b int64) float64 { return float64(b) / (1 << 20) }
	gather, reduce := train.ExchangeBytes(cfg.Batch, run.Model.Projector.Out, comm.Size())
	how := fmt.Sprintf("the loss gathers the embeddings, %.1f MiB per step (an all-reduce of C would carry %.1f MiB)", mib(gather), mib(reduce))
	if run.Exchange == train.ReduceC {
		how = fmt.Sprintf("the loss all-reduces C, %.1f MiB per step (gathering the embeddings would carry %.1f MiB)", mib(reduce), mib(gather))
	}
	fmt.Fprintf(log, "ranks    %d (%s), batch %d each; BatchNorm %s; %s\n",
		comm.Size(), dist.MPI, cfg.Batch/comm.Size(),
		map[bool]string{true: "per rank (-sync-bn=false)", false: "synchronised over the ranks"}[cfg.PerRankBatchNorm], how)
}

// summarise prints a finished run's last figures and the files it wrote.
func summarise(log io.Writer, run *train.Run, dir string, h train.History) {
	if run.Loss != nil { // InfoNCE has no cross-correlation figures
		if st, err := run.Loss.Stats(); err == nil {
			fmt.Fprintf(log, "final    loss %.2f (invariance %.2f, redundancy %.1f), mean C_ii %.3f, mean |C_ij| %.3f\n",
				st.Loss, st.OnDiag, st.OffDiag, st.MeanDiag, st.MeanAbsOff)
		}
	}
	if bad := run.Loader.Skipped(); len(bad) > 0 {
		fmt.Fprintf(log, "skipped  %d bad images (-skip-bad-images), listed above\n", len(bad))
	}
	fmt.Fprintf(log, "wrote    %s: checkpoint.safetensors, config.json, run.json, metrics.jsonl, loss.png, lr.png, c_start.png, c_end.png%s\n", dir,
		map[bool]string{true: ", knn.png"}[len(h.KNNSteps) > 0])
}

// lossEnds are the means of the first and the last tenth of a run's
// losses (0 for none): one step's loss is one batch's, too noisy to
// compare runs by.
func lossEnds(losses []float64) (start, end float64) {
	if len(losses) == 0 {
		return 0, 0
	}
	tenth := max(1, len(losses)/10)
	return mean(losses[:tenth]), mean(losses[len(losses)-tenth:])
}

func mean(v []float64) float64 {
	s := 0.0
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// reportOnce prints an error the ranks agreed on from rank 0 alone and
// holds every rank until it has: mpirun ends the job when the first rank
// exits with an error, so a rank that printed after that could be lost,
// and three copies of one message help nobody.
func reportOnce(comm dist.Comm, err error) error {
	var agreed *dist.RankError
	if comm.Size() == 1 || !errors.As(err, &agreed) {
		return err
	}
	if comm.Rank() == 0 {
		fmt.Fprintf(os.Stderr, "bt pretrain: %v\n", err)
	}
	if e := comm.AllReduce(make([]float32, 1)); e != nil {
		return e
	}
	return errReported
}

// follow is a rank other than 0 of a run over several processes: it
// trains its share of every step and writes nothing; rank 0 keeps the
// run's directory, checkpoints, metrics and plots.
func follow(ctx context.Context, run *train.Run, ro runOptions, ready *bool) error {
	if ro.init != "" {
		if err := initBackbone(run, ro.init); err != nil {
			return err
		}
	}
	*ready = true
	if err := dist.Agree(ro.comm, nil); err != nil {
		return err
	}
	return run.Loop.Execute(ctx)
}

// rankAdapter is the adapter a process opens: the one -adapter or
// $BT_ADAPTER names, or, for a rank of several, the local rank's among
// the machine's GPUs of -backend (its CPU adapters when it has none), so
// that the ranks on one machine spread over its GPUs.
func rankAdapter(flagged string, comm dist.Comm) (string, error) {
	if flagged != "" || os.Getenv("BT_ADAPTER") != "" || comm.Size() == 1 {
		return flagged, nil
	}
	infos, err := adapters()
	if err != nil {
		return "", err
	}
	var gpus, all []int
	for _, a := range infos {
		all = append(all, a.Index)
		if a.Type != "CPU" {
			gpus = append(gpus, a.Index)
		}
	}
	if len(gpus) == 0 {
		gpus = all
	}
	return strconv.Itoa(gpus[dist.LocalRank()%len(gpus)]), nil
}

// initBackbone loads a backbone's weights and statistics from path into
// the run's model before its first step; a file that records its network
// must record this run's.
func initBackbone(run *train.Run, path string) error {
	c, err := train.LoadCheckpoint(path)
	if err != nil {
		return err
	}
	want := run.Model.Config
	if got := c.Model; got.Arch != "" && (got.Arch != want.Arch || got.Stem != want.Stem || got.InChannels != want.InChannels) {
		return fmt.Errorf("-init %s holds a %s backbone (%s stem, %d channels); this run trains a %s (%s stem, %d channels)",
			path, got.Arch, got.Stem, got.InChannels, want.Arch, want.Stem, want.InChannels)
	}
	if err := c.RestoreBackbone(run.Model); err != nil {
		return fmt.Errorf("-init: %w", err)
	}
	return nil
}

// openDir claims the run directory: the checkpoint's run to resume, -out
// replaced with -overwrite, the next free default, or a new -out.
func (ro runOptions) openDir() (*rundir.Dir, error) {
	var (
		d   *rundir.Dir
		err error
	)
	switch {
	case ro.ckpt != nil:
		d, err = rundir.Open(ro.out, rundir.Resume)
	case ro.overwrite:
		d, err = rundir.Open(ro.out, rundir.Overwrite)
	case ro.auto:
		d, err = rundir.OpenNext(ro.out)
	default:
		d, err = rundir.Open(ro.out, rundir.New)
	}
	if errors.Is(err, rundir.ErrBusy) && ro.ckpt == nil {
		err = fmt.Errorf("-out: %w (-resume DIR/checkpoint.safetensors continues it, -overwrite replaces it)", err)
	}
	return d, err
}

// progress shows a bar with ETA, pairs/s and loss on a terminal, and a line
// every few percent elsewhere (CI logs).
type progress struct {
	bar   *progressbar.ProgressBar
	log   io.Writer
	total int
	next  int
}

func newProgress(log io.Writer, total int) *progress {
	p := &progress{log: log, total: total}
	if f, ok := log.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		p.bar = progressbar.NewOptions(total, progressbar.OptionSetWriter(log), progressbar.OptionSetWidth(30),
			progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish())
	}
	return p
}

func (p *progress) update(ev train.Event) {
	if p.bar != nil {
		p.bar.Describe(fmt.Sprintf("loss %8.2f  %6.1f pairs/s%s", ev.Loss, ev.PairsPerS, health(ev)))
		p.bar.Add(1)
		return
	}
	p.next++
	if p.next == p.total || p.next%max(1, p.total/20) == 0 {
		eta := time.Duration(float64(ev.Elapsed) / float64(p.next) * float64(p.total-p.next)).Round(time.Second)
		fmt.Fprintf(p.log, "step %6d/%d  loss %8.2f  %6.1f pairs/s  elapsed %s  eta %s%s\n",
			ev.Step+1, ev.Steps, ev.Loss, ev.PairsPerS, ev.Elapsed.Round(time.Second), eta, health(ev))
	}
}

// note prints a line (a warning) between the progress updates.
func (p *progress) note(line string) {
	if p.bar != nil {
		p.bar.Clear()
	}
	fmt.Fprintln(p.log, line)
}

// health is a step's figures that show a collapse or divergence coming:
// mean C_ii, mean |C_ij| (its root mean square where the loss's path does
// not give it per step) and the embeddings' mean per-dimension standard
// deviation; "" for an objective without them.
func health(ev train.Event) string {
	var b strings.Builder
	if t := ev.Terms; t != nil {
		fmt.Fprintf(&b, "  C_ii %.3f", t.MeanDiag)
		if math.IsNaN(float64(t.MeanAbsOff)) {
			fmt.Fprintf(&b, "  rms C_ij %.3f", t.RMSOff)
		} else {
			fmt.Fprintf(&b, "  |C_ij| %.3f", t.MeanAbsOff)
		}
	}
	if sp := ev.Spread; sp != nil {
		fmt.Fprintf(&b, "  z std %.3g", sp.Mean)
	}
	return b.String()
}

func (p *progress) done() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
