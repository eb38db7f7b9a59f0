package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bt-org/bt/bench"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
)

// benchArgs are bt bench's flags.
type benchArgs struct {
	suites, shapes, lossShapes string
	roofline, profile          bool
	arch, precision            string
	projector                  train.Projector
	batch, size                int
	minTime                    time.Duration
	roof                       bench.Ceilings // measured with -roofline
}

// benchFlags is bt bench's flag set over a.
func benchFlags(a *benchArgs) (*flag.FlagSet, *string, *tuneSource, *traceFlags) {
	fs, adapter := newFlags("bench", "Measures bt's kernels on the adapter: GEMM beside gonum's CPU BLAS on the same operands, convolutions\nagainst the adapter's GEMM, the Barlow Twins loss (fused against materialised and plain GEMMs), whole training steps,\nand the adapter's ceiling: multiply-adds in registers alone.")
	fs.StringVar(&a.suites, "suites", "gemm,loss,twin", "comma-separated: gemm, conv, loss, twin, fma, bw")
	fs.BoolVar(&a.roofline, "roofline", false, "measure the adapter's FMA and bandwidth ceilings first and place every GEMM and convolution against them")
	fs.StringVar(&a.shapes, "gemm-shapes", "square-128,square-256,square-512,square-1024,projector-256x2048x8192",
		"GEMM shapes, from: "+shapeNames())
	fs.StringVar(&a.lossShapes, "loss-shapes", "256x2048", "loss shapes N×D, e.g. 256x2048,2048x8192,512x16384")
	fs.StringVar(&a.arch, "arch", "tiny", "backbone of the twin-step benchmark")
	fs.IntVar(&a.batch, "batch", 256, "batch of the twin-step benchmark")
	fs.IntVar(&a.size, "size", 28, "image size of the twin-step benchmark (grayscale)")
	fs.TextVar(&a.projector, "projector", train.Projector("512-512-512"), "projector of the twin-step benchmark")
	fs.BoolVar(&a.profile, "profile", false, "also show the twin step's device time per kernel family, against the adapter's ceilings, tuned beside built-in")
	a.precision = "f32"
	fs.Var(choiceFlag[string]{&a.precision, []string{"f32", "f16", "both"}}, "precision", "activations of the twin-step benchmark: f32, f16 (mixed precision), or both, f16 beside f32 in the same run")
	fs.DurationVar(&a.minTime, "time", 2*time.Second, "minimum time to measure each case")
	var tuning tuneSource
	tuning.register(fs)
	var tf traceFlags
	tf.register(fs, false)
	return fs, adapter, &tuning, &tf
}

func runBench(args []string) (err error) {
	var a benchArgs
	fs, adapter, tuning, tf := benchFlags(&a)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if a.precision != "f32" && !strings.Contains(a.suites, "twin") {
		return fmt.Errorf("-precision %s: only the twin suite has a precision; add twin to -suites", a.precision)
	}
	d, err := openDevice(*adapter)
	if err != nil {
		return err
	}
	defer d.Release()
	if err := tuning.apply(d, os.Stdout); err != nil {
		return err
	}
	if a.precision != "f32" && !d.F16 {
		return fmt.Errorf("-precision %s: %s has no shader-f16", a.precision, d.Info.Name)
	}
	finish, err := tf.start(d)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, finish()) }()
	fmt.Printf("adapter: %s\n", d.Info)
	if a.roofline {
		if a.roof, err = bench.MeasureCeilings(d, a.minTime); err != nil {
			return err
		}
		fmt.Printf("ceilings: %.1f GFLOP/s (FMA in registers), %.1f GB/s (streaming)\n", a.roof.GFLOPS, a.roof.GBps)
	}
	suites := map[string]func(*gpu.Device) error{"gemm": a.gemm, "conv": a.conv, "loss": a.loss, "twin": a.twin, "bw": a.bw, "fma": a.fma}
	for _, suite := range strings.Split(a.suites, ",") {
		span := d.Trace().Begin(strings.TrimSpace(suite))
		run, ok := suites[strings.TrimSpace(suite)]
		if !ok {
			return fmt.Errorf("unknown suite %q: want gemm, conv, loss, twin, fma or bw", suite)
		}
		if err := run(d); err != nil {
			return err
		}
		span.End()
	}
	return nil
}

// gemm measures the -gemm-shapes, each beside its untuned figure.
func (a *benchArgs) gemm(d *gpu.Device) error {
	for _, name := range strings.Split(a.shapes, ",") {
		s, ok := findShape(strings.TrimSpace(name))
		if !ok {
			return fmt.Errorf("unknown GEMM shape %q; known: %s", name, shapeNames())
		}
		r, err := bench.MeasureGemm(d, s, a.minTime)
		if err != nil {
			return err
		}
		fmt.Println(r)
		if a.roofline {
			fmt.Printf("  roofline %s\n", a.roof.Roof(s.Flops(), float64(r.AdapterBytes), s.Flops()/r.GFLOPS/1e9))
		}
		if err := untuned(d, func() error {
			b, err := bench.MeasureGemm(d, s, a.minTime)
			if err == nil {
				fmt.Printf("%v   built-in tile: tuned ×%.2f\n", b, r.GFLOPS/b.GFLOPS)
			}
			return err
		}); err != nil {
			return err
		}
	}
	return nil
}

// conv measures the convolution cases beside a GEMM of 1024³.
func (a *benchArgs) conv(d *gpu.Device) error {
	g, err := bench.MeasureGemm(d, bench.GemmShape{Name: "square-1024", M: 1024, N: 1024, K: 1024}, a.minTime)
	if err != nil {
		return err
	}
	fmt.Printf("conv     reference: GEMM 1024³ at %.1f GFLOP/s\n", g.GFLOPS)
	for _, c := range bench.ConvCases {
		r, err := bench.MeasureConv(d, c, a.minTime)
		if err != nil {
			return err
		}
		fmt.Printf("%v   forward %.2f× GEMM\n", r, r.Forward/g.GFLOPS)
		if a.roofline {
			flops, bytes := c.Flops(), c.Bytes()
			for _, p := range []struct {
				pass   string
				gflops float64
			}{{"forward", r.Forward}, {"data-grad", r.Data}, {"weight-grad", r.Weight}} {
				fmt.Printf("  roofline %-11s %s\n", p.pass, a.roof.Roof(flops, bytes, flops/p.gflops/1e9))
			}
		}
	}
	return nil
}

// loss measures the Barlow Twins loss at the -loss-shapes.
func (a *benchArgs) loss(d *gpu.Device) error {
	for _, name := range strings.Split(a.lossShapes, ",") {
		var n, dim int
		if _, err := fmt.Sscanf(strings.TrimSpace(name), "%dx%d", &n, &dim); err != nil {
			return fmt.Errorf("loss shape %q: want N×D as NxD, e.g. 256x2048", name)
		}
		r, err := bench.MeasureLoss(d, n, dim, a.minTime)
		if err != nil {
			return err
		}
		fmt.Println(r)
	}
	return nil
}

// twin measures whole training steps at each -precision, the second
// beside the first, each beside its untuned figure.
func (a *benchArgs) twin(d *gpu.Device) error {
	var first bench.TwinResult
	acts := map[string][]gpu.DType{"f32": {gpu.F32}, "f16": {gpu.F16}, "both": {gpu.F32, gpu.F16}}[a.precision]
	for i, act := range acts {
		r, err := bench.MeasureTwinStep(d, a.arch, a.batch, a.size, a.projector, act, a.minTime)
		if err != nil {
			return err
		}
		if i == 0 {
			first = r
			fmt.Println(r)
		} else {
			fmt.Printf("%v   %.2f× the f32 step's pairs/s, %.2f× its peak memory\n", r, r.PairsPerSec/first.PairsPerSec, float64(r.PeakBytes)/float64(first.PeakBytes))
		}
		if err := untuned(d, func() error {
			b, err := bench.MeasureTwinStep(d, a.arch, a.batch, a.size, a.projector, act, a.minTime)
			if err == nil {
				fmt.Printf("%v   built-in tiles: tuned ×%.2f\n", b, r.PairsPerSec/b.PairsPerSec)
			}
			return err
		}); err != nil {
			return err
		}
		if a.profile {
			if err := a.profileTwin(d, act); err != nil {
				return err
			}
		}
	}
	return nil
}

// profileTwin prints the twin step's device time per kernel family, each
// against the adapter's ceilings (measured here if -roofline did not), and
// the built-in choices' profile beside the tuned one.
func (a *benchArgs) profileTwin(d *gpu.Device, act gpu.DType) error {
	if a.roof == (bench.Ceilings{}) {
		var err error
		if a.roof, err = bench.MeasureCeilings(d, a.minTime); err != nil {
			return err
		}
		fmt.Printf("ceilings: %.1f GFLOP/s (FMA in registers), %.1f GB/s (streaming)\n", a.roof.GFLOPS, a.roof.GBps)
	}
	p, err := bench.ProfileTwinStep(d, a.arch, a.batch, a.size, a.projector, act, 3)
	if err != nil {
		return err
	}
	fmt.Println(p)
	fmt.Println(p.Roofline(a.roof))
	return untuned(d, func() error {
		b, err := bench.ProfileTwinStep(d, a.arch, a.batch, a.size, a.projector, act, 3)
		if err == nil {
			fmt.Println(p.Beside(b, "tuned", "built-in"))
			fmt.Println(b.Roofline(a.roof))
		}
		return err
	})
}

// fma measures multiply-adds in registers at each chain count and prints
// the peak.
func (a *benchArgs) fma(d *gpu.Device) error {
	var best bench.FMAResult
	for _, chains := range bench.FMAChains {
		r, err := bench.MeasureFMA(d, chains, a.minTime)
		if err != nil {
			return err
		}
		fmt.Println(r)
		if r.GFLOPS > best.GFLOPS {
			best = r
		}
	}
	fmt.Printf("fma      peak %.1f GFLOP/s at %d chains\n", best.GFLOPS, best.Chains)
	return nil
}

// bw measures streaming bandwidth.
func (a *benchArgs) bw(d *gpu.Device) error {
	r, err := bench.MeasureBandwidth(d, a.minTime)
	if err != nil {
		return err
	}
	fmt.Println(r)
	return nil
}

// untuned runs measure with bt's built-in tiles, where the device holds
// tuned ones, so that a tuned figure has the untuned one beside it from the
// same run; without tuning it does nothing.
func untuned(d *gpu.Device, measure func() error) error {
	t := d.Tuning()
	if len(t.Gemm) == 0 && len(t.Kernels) == 0 {
		return nil
	}
	if err := d.SetTuning(gpu.Tuning{}); err != nil {
		return err
	}
	err := measure()
	if err2 := d.SetTuning(t); err == nil {
		err = err2
	}
	return err
}

func shapeNames() string {
	var names []string
	for _, s := range bench.GemmShapes {
		names = append(names, s.Name)
	}
	return strings.Join(names, ", ")
}

func findShape(name string) (bench.GemmShape, bool) {
	for _, s := range bench.GemmShapes {
		if s.Name == name {
			return s, true
		}
	}
	return bench.GemmShape{}, false
}
