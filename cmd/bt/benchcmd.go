package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/bt-org/bt/bench"
	"github.com/bt-org/bt/gpu"
)

func runBench(args []string) error {
	fs, adapter := newFlags("bench", "Measures GEMM on the adapter and the same products on the CPU through gonum, in the same run.")
	shapes := fs.String("shapes", "square-128,square-256,square-512,square-1024,projector-256x2048x8192",
		"comma-separated GEMM shapes, from: "+shapeNames())
	minTime := fs.Duration("time", 2*time.Second, "minimum time to measure each shape on each side")
	if err := fs.Parse(args); err != nil {
		return err
	}
	d, err := gpu.Open(gpu.Options{Adapter: *adapter})
	if err != nil {
		return err
	}
	defer d.Release()
	fmt.Printf("adapter: %s\n", d.Info)
	for _, name := range strings.Split(*shapes, ",") {
		s, ok := findShape(strings.TrimSpace(name))
		if !ok {
			return fmt.Errorf("unknown shape %q; known: %s", name, shapeNames())
		}
		r, err := bench.MeasureGemm(d, s, *minTime)
		if err != nil {
			return err
		}
		fmt.Println(r)
	}
	return nil
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
