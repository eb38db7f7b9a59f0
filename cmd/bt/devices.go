package main

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/selfcheck"
)

func runDevices(args []string) error {
	fs, adapter := newFlags("devices", "Lists the WebGPU adapters, describes the one bt would use (and those it skipped, with the reason), and checks its\nkernels against float64 references.")
	check := fs.Bool("check", true, "run the kernel self-check on the chosen adapter")
	seed := fs.Uint64("seed", uint64(time.Now().UnixNano()), "seed of the self-check's random inputs (default: the clock; printed, to repeat a failure)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	infos, err := adapters()
	if err != nil {
		return err
	}
	fmt.Println("adapters:")
	for _, a := range infos {
		fmt.Println("  " + a.String())
	}
	d, err := gpu.Open(gpu.Options{Adapter: *adapter, Backend: backend})
	if err != nil {
		return err
	}
	defer d.Release()
	fmt.Printf("\nchosen:\n%s", d.Report())
	if dist.MPI != "" {
		fmt.Printf("MPI: %s: runs over several processes under mpirun or srun (README: Several GPUs or machines)\n", dist.MPI)
	} else {
		fmt.Println("MPI: none in this binary; scripts/build-mpi.sh builds one that runs over several processes")
	}
	if !*check {
		return nil
	}
	fmt.Printf("\nself-check of every kernel (random inputs with -seed %d, NaN-poisoned outputs, relative error against float64):\n", *seed)
	failed := 0
	rng := rand.New(rand.NewPCG(*seed, 1))
	for _, c := range selfcheck.Checks() {
		start, before := time.Now(), d.Dispatches()
		err := c.Run(d, rng)
		status := "ok"
		if err != nil {
			status = "FAIL: " + err.Error()
			failed++
		}
		var ran []string
		for s, n := range d.Dispatches() {
			if n > before[s] {
				ran = append(ran, s)
			}
		}
		slices.Sort(ran)
		fmt.Printf("  %-50s %6s  %-4s %s\n", c.Name, time.Since(start).Round(time.Millisecond), status, strings.Join(ran, " "))
	}
	if failed > 0 {
		return fmt.Errorf("%d kernel check(s) failed on %s (repeat with -seed %d)", failed, d.Info.Name, *seed)
	}
	fmt.Println("all kernels agree with their references")
	return nil
}
