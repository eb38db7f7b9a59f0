package bench

import (
	"fmt"
	"time"

	"github.com/bt-org/bt/gpu"
)

// bwElems is the streaming probe's tensor: 64 MiB of f32, far beyond any
// adapter's caches, so that it measures memory and not a cache.
const bwElems = 16 << 20

// BandwidthResult is the adapter's streaming bandwidth: a kernel that reads
// every element once and writes it once (bt's elementwise Scale), and the
// queue's buffer-to-buffer copy, each over 64 MiB.
type BandwidthResult struct {
	Kernel, Copy float64 // GB/s, bytes read plus bytes written
}

// GBps is the ceiling: the faster of the two.
func (r BandwidthResult) GBps() float64 { return max(r.Kernel, r.Copy) }

func (r BandwidthResult) String() string {
	return fmt.Sprintf("bw       streaming kernel %8.1f GB/s   buffer copy %8.1f GB/s   (64 MiB read + 64 MiB written)", r.Kernel, r.Copy)
}

// MeasureBandwidth times the streaming kernel and the copy for at least
// minTime each.
func MeasureBandwidth(d *gpu.Device, minTime time.Duration) (BandwidthResult, error) {
	x, err := d.NewTensor(bwElems)
	if err != nil {
		return BandwidthResult{}, err
	}
	defer x.Release()
	y, err := d.NewTensor(bwElems)
	if err != nil {
		return BandwidthResult{}, err
	}
	defer y.Release()
	if err := d.Run(func(r *gpu.Recorder) error { return gpu.Fill(r, x, 1) }); err != nil {
		return BandwidthResult{}, err
	}
	bytes := 2 * 4 * float64(bwElems)
	run := func(op func(r *gpu.Recorder) error) (float64, error) {
		sec, err := Time(minTime, func() error {
			err := d.Run(op)
			d.Sync()
			return err
		})
		return bytes / sec / 1e9, err
	}
	var res BandwidthResult
	if res.Kernel, err = run(func(r *gpu.Recorder) error { return gpu.Scale(r, y, x, 1) }); err != nil {
		return BandwidthResult{}, err
	}
	if res.Copy, err = run(func(r *gpu.Recorder) error { return r.Copy(y, x) }); err != nil {
		return BandwidthResult{}, err
	}
	return res, nil
}

// Ceilings are the adapter's two limits measured in the same run: its
// multiply-add rate in registers (the FMA probe) and its streaming
// bandwidth.
type Ceilings struct {
	GFLOPS, GBps float64
}

// MeasureCeilings runs the FMA probe at its best number of chains and the
// bandwidth probe.
func MeasureCeilings(d *gpu.Device, minTime time.Duration) (Ceilings, error) {
	var c Ceilings
	for _, chains := range FMAChains {
		r, err := MeasureFMA(d, chains, minTime)
		if err != nil {
			return Ceilings{}, err
		}
		c.GFLOPS = max(c.GFLOPS, r.GFLOPS)
	}
	bw, err := MeasureBandwidth(d, minTime)
	if err != nil {
		return Ceilings{}, err
	}
	c.GBps = bw.GBps()
	return c, nil
}

// Roof places a kernel that did flops and moved bytes (its minimal traffic:
// inputs read once, outputs written once) in seconds against the ceilings:
// the fraction of each it reached, and which one bounds it (the one its
// arithmetic intensity, FLOP per byte, puts it under).
func (c Ceilings) Roof(flops, bytes, seconds float64) string {
	gf, gb := flops/seconds/1e9, bytes/seconds/1e9
	bound := "compute"
	if flops/bytes < c.GFLOPS/c.GBps {
		bound = "memory"
	}
	return fmt.Sprintf("%7.1f GFLOP/s (%5.1f%% of FMA)  %7.1f GB/s (%5.1f%% of bandwidth)  %4.1f FLOP/B: %s-bound",
		gf, 100*gf/c.GFLOPS, gb, 100*gb/c.GBps, flops/bytes, bound)
}
