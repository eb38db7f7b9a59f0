package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/bt-org/bt/bench"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
)

func runBench(args []string) (err error) {
	fs, adapter := newFlags("bench", "Measures bt's kernels on the adapter: GEMM beside gonum's CPU BLAS on the same operands, convolutions\nagainst the adapter's GEMM, the Barlow Twins loss (fused against materialised and plain GEMMs), whole training steps,\nand the adapter's ceiling: multiply-adds in registers alone.")
	suites := fs.String("suites", "gemm,loss,twin", "comma-separated: gemm, conv, loss, twin, fma, bw")
	roofline := fs.Bool("roofline", false, "measure the adapter's FMA and bandwidth ceilings first and place every GEMM and convolution against them")
	shapes := fs.String("gemm-shapes", "square-128,square-256,square-512,square-1024,projector-256x2048x8192",
		"GEMM shapes, from: "+shapeNames())
	lossShapes := fs.String("loss-shapes", "256x2048", "loss shapes N×D, e.g. 256x2048,2048x8192,512x16384")
	arch := fs.String("arch", "tiny", "backbone of the twin-step benchmark")
	batch := fs.Int("batch", 256, "batch of the twin-step benchmark")
	size := fs.Int("size", 28, "image size of the twin-step benchmark (grayscale)")
	projector := new(train.Projector)
	fs.TextVar(projector, "projector", train.Projector("512-512-512"), "projector of the twin-step benchmark")
	profile := fs.Bool("profile", false, "also show the twin step's device time per kernel family")
	precision := "f32"
	fs.Var(choiceFlag[string]{&precision, []string{"f32", "f16", "both"}}, "precision", "activations of the twin-step benchmark: f32, f16 (mixed precision), or both, f16 beside f32 in the same run")
	minTime := fs.Duration("time", 2*time.Second, "minimum time to measure each case")
	var tuning tuneSource
	tuning.register(fs)
	var tf traceFlags
	tf.register(fs, false)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if precision != "f32" && !strings.Contains(*suites, "twin") {
		return fmt.Errorf("-precision %s: only the twin suite has a precision; add twin to -suites", precision)
	}
	d, err := openDevice(*adapter)
	if err != nil {
		return err
	}
	defer d.Release()
	if err := tuning.apply(d, os.Stdout); err != nil {
		return err
	}
	if precision != "f32" && !d.F16 {
		return fmt.Errorf("-precision %s: %s has no shader-f16", precision, d.Info.Name)
	}
	finish, err := tf.start(d)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, finish()) }()
	acts := map[string][]gpu.DType{"f32": {gpu.F32}, "f16": {gpu.F16}, "both": {gpu.F32, gpu.F16}}[precision]
	fmt.Printf("adapter: %s\n", d.Info)
	var roof bench.Ceilings
	if *roofline {
		if roof, err = bench.MeasureCeilings(d, *minTime); err != nil {
			return err
		}
		fmt.Printf("ceilings: %.1f GFLOP/s (FMA in registers), %.1f GB/s (streaming)\n", roof.GFLOPS, roof.GBps)
	}
	for _, suite := range strings.Split(*suites, ",") {
		span := d.Trace().Begin(strings.TrimSpace(suite))
		switch strings.TrimSpace(suite) {
		case "gemm":
			for _, name := range strings.Split(*shapes, ",") {
				s, ok := findShape(strings.TrimSpace(name))
				if !ok {
					return fmt.Errorf("unknown GEMM shape %q; known: %s", name, shapeNames())
				}
				r, err := bench.MeasureGemm(d, s, *minTime)
				if err != nil {
					return err
				}
				fmt.Println(r)
				if *roofline {
					fmt.Printf("  roofline %s\n", roof.Roof(s.Flops(), float64(r.AdapterBytes), s.Flops()/r.GFLOPS/1e9))
				}
				if err := untuned(d, func() error {
					b, err := bench.MeasureGemm(d, s, *minTime)
					if err == nil {
						fmt.Printf("%v   built-in tile: tuned ×%.2f\n", b, r.GFLOPS/b.GFLOPS)
					}
					return err
				}); err != nil {
					return err
				}
			}
		case "conv":
			g, err := bench.MeasureGemm(d, bench.GemmShape{Name: "square-1024", M: 1024, N: 1024, K: 1024}, *minTime)
			if err != nil {
				return err
			}
			fmt.Printf("conv     reference: GEMM 1024³ at %.1f GFLOP/s\n", g.GFLOPS)
			for _, c := range bench.ConvCases {
				r, err := bench.MeasureConv(d, c, *minTime)
				if err != nil {
					return err
				}
				fmt.Printf("%v   forward %.2f× GEMM\n", r, r.Forward/g.GFLOPS)
				if *roofline {
					flops, bytes := c.Flops(), c.Bytes()
					for _, p := range []struct {
						pass   string
						gflops float64
					}{{"forward", r.Forward}, {"data-grad", r.Data}, {"weight-grad", r.Weight}} {
						fmt.Printf("  roofline %-11s %s\n", p.pass, roof.Roof(flops, bytes, flops/p.gflops/1e9))
					}
				}
			}
		case "loss":
			for _, name := range strings.Split(*lossShapes, ",") {
				var n, dim int
				if _, err := fmt.Sscanf(strings.TrimSpace(name), "%dx%d", &n, &dim); err != nil {
					return fmt.Errorf("loss shape %q: want N×D as NxD, e.g. 256x2048", name)
				}
				r, err := bench.MeasureLoss(d, n, dim, *minTime)
				if err != nil {
					return err
				}
				fmt.Println(r)
			}
		case "twin":
			var first bench.TwinResult
			for i, act := range acts {
				r, err := bench.MeasureTwinStep(d, *arch, *batch, *size, *projector, act, *minTime)
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
					b, err := bench.MeasureTwinStep(d, *arch, *batch, *size, *projector, act, *minTime)
					if err == nil {
						fmt.Printf("%v   built-in tiles: tuned ×%.2f\n", b, r.PairsPerSec/b.PairsPerSec)
					}
					return err
				}); err != nil {
					return err
				}
				if *profile {
					p, err := bench.ProfileTwinStep(d, *arch, *batch, *size, *projector, act, 3)
					if err != nil {
						return err
					}
					fmt.Println(p)
				}
			}
		case "bw":
			r, err := bench.MeasureBandwidth(d, *minTime)
			if err != nil {
				return err
			}
			fmt.Println(r)
		case "fma":
			var best bench.FMAResult
			for _, chains := range bench.FMAChains {
				r, err := bench.MeasureFMA(d, chains, *minTime)
				if err != nil {
					return err
				}
				fmt.Println(r)
				if r.GFLOPS > best.GFLOPS {
					best = r
				}
			}
			fmt.Printf("fma      peak %.1f GFLOP/s at %d chains\n", best.GFLOPS, best.Chains)
		default:
			return fmt.Errorf("unknown suite %q: want gemm, conv, loss, twin, fma or bw", suite)
		}
		span.End()
	}
	return nil
}

// untuned runs measure with bt's built-in tiles, where the device holds
// tuned ones, so that a tuned figure has the untuned one beside it from the
// same run; without tuning it does nothing.
func untuned(d *gpu.Device, measure func() error) error {
	t := d.Tuning()
	if len(t.Gemm) == 0 {
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
