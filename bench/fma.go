package bench

import (
	"fmt"
	"time"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/shaders"
)

// fmaWG, fmaUnroll and fmaIters shape the FMA probe: each invocation runs
// fmaUnroll·fmaIters multiply-adds per chain, within lavapipe's loop limit.
const (
	fmaWG     = 64
	fmaUnroll = 8
	fmaIters  = 4096
)

// FMAChains are the numbers of independent vec4 chains per invocation the
// FMA suite sweeps: one chain waits on the FMA latency, enough of them
// keep every unit busy.
var FMAChains = []int{1, 2, 4, 8, 16}

// FMAResult is the rate of a kernel that does nothing but fused
// multiply-adds in registers: the ceiling that every kernel of bt is
// measured against.
type FMAResult struct {
	Chains      int
	Invocations int
	GFLOPS      float64
}

func (r FMAResult) String() string {
	return fmt.Sprintf("fma      %2d vec4 chains per invocation   %8.1f GFLOP/s   (%d invocations)", r.Chains, r.GFLOPS, r.Invocations)
}

// fmaFlops counts one vec4 fma as 8 FLOP.
func fmaFlops(invocations, chains, iters int) float64 {
	return 8 * float64(invocations) * float64(chains) * float64(fmaUnroll) * float64(iters)
}

// fma holds the probe's kernel and output on the device.
type fma struct {
	d      *gpu.Device
	k      *gpu.Kernel
	y      *gpu.Tensor
	groups int
}

func newFMA(d *gpu.Device, chains, groups int) (*fma, error) {
	if groups < 1 || groups > int(d.Limits.MaxComputeWorkgroupsPerDimension) {
		return nil, fmt.Errorf("bench: fma: %d workgroups; %s allows 1 to %d", groups, d.Info.Name, d.Limits.MaxComputeWorkgroupsPerDimension)
	}
	k, err := d.Kernel("fma", shaders.FMA{Chains: chains, Unroll: fmaUnroll, Threads: shaders.Threads{WG: fmaWG}})
	if err != nil {
		return nil, err
	}
	y, err := d.NewTensor(groups * fmaWG)
	if err != nil {
		return nil, err
	}
	return &fma{d: d, k: k, y: y, groups: groups}, nil
}

// run dispatches the probe once and waits for it.
func (f *fma) run(iters int, a, b float32) error {
	if iters < 1 || iters > gpu.MaxLoopSteps {
		return fmt.Errorf("bench: fma: %d loop trips; 1 to %d fit a CPU adapter's loop limit", iters, gpu.MaxLoopSteps)
	}
	err := f.d.Run(func(r *gpu.Recorder) error {
		return r.Dispatch(f.k, [3]int{f.groups, 1, 1}, gpu.Params{}.U(iters).F(a).F(b).U(0), f.y)
	})
	f.d.Sync()
	return err
}

// fmaA and fmaB hold every accumulator near 1: no overflow, no subnormals.
const fmaA, fmaB = 0.999, 0.001

// MeasureFMA times the probe with the given number of chains for at least
// minTime.
func MeasureFMA(d *gpu.Device, chains int, minTime time.Duration) (FMAResult, error) {
	groups, err := fmaGroups(d, chains)
	if err != nil {
		return FMAResult{}, err
	}
	f, err := newFMA(d, chains, groups)
	if err != nil {
		return FMAResult{}, err
	}
	defer f.y.Release()
	sec, err := Time(minTime, func() error { return f.run(fmaIters, fmaA, fmaB) })
	if err != nil {
		return FMAResult{}, err
	}
	return FMAResult{Chains: chains, Invocations: groups * fmaWG, GFLOPS: fmaFlops(groups*fmaWG, chains, fmaIters) / sec / 1e9}, nil
}

// fmaGroups grows the grid until one dispatch takes 50 ms or fills the
// first grid dimension, so that the submit and the wait are a small part
// of the time on a CPU adapter and a GPU alike.
func fmaGroups(d *gpu.Device, chains int) (int, error) {
	maxGroups := int(d.Limits.MaxComputeWorkgroupsPerDimension)
	groups := 1
	for ; groups < maxGroups; groups = min(4*groups, maxGroups) {
		f, err := newFMA(d, chains, groups)
		if err != nil {
			return 0, err
		}
		// Time's first call compiles the kernel; the second is timed.
		sec, err := Time(0, func() error { return f.run(fmaIters, fmaA, fmaB) })
		f.y.Release()
		if err != nil {
			return 0, err
		}
		if sec >= 0.05 {
			break
		}
	}
	return groups, nil
}
