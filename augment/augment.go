// Package augment renders Barlow Twins views on a GPU: a raw loader
// (pipeline.LoaderConfig.Raw) decodes JPEGs to 8-bit images and draws every
// random choice on the CPU, from the same seeded stream as the CPU path;
// this package uploads the 8-bit images (a quarter of float32's bytes) and
// the draws, and records the crop and resize, flip, colour jitter in the
// drawn order, grayscale, Gaussian blur, solarization and normalisation as
// WGSL kernels (shaders/augment.wgsl) into the caller's recording. The
// result matches pipeline.Augmenter.Apply up to float rounding.
package augment

import (
	"errors"
	"fmt"
	"math"
	"unsafe"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/pipeline"
	"github.com/bt-org/bt/shaders"
)

// Per-sample record layout, as shaders/augment.wgsl documents it.
const (
	metaBlur = 21 // first blur weight
)

// Augmenter augments raw batches on one device. Like the device, it is for
// one goroutine at a time.
type Augmenter struct {
	d     *gpu.Device
	views []pipeline.ViewConfig
	// The last batch's uploads and scratch stay alive until the next
	// Record, because the recording that reads them is submitted later.
	keep []*gpu.Tensor
	meta []float32
	pix  []byte
}

// New returns an augmenter for the views of cfg (two for pretraining; use
// NewEval for one).
func New(d *gpu.Device, cfg pipeline.Config) (*Augmenter, error) {
	return newAugmenter(d, []pipeline.ViewConfig{cfg.A, cfg.B})
}

// NewEval returns an augmenter for a single view.
func NewEval(d *gpu.Device, view pipeline.ViewConfig) (*Augmenter, error) {
	return newAugmenter(d, []pipeline.ViewConfig{view})
}

func newAugmenter(d *gpu.Device, views []pipeline.ViewConfig) (*Augmenter, error) {
	if d == nil {
		return nil, errors.New("augment: nil device")
	}
	for i := range views {
		if err := views[i].Validate(); err != nil {
			return nil, err
		}
	}
	return &Augmenter{d: d, views: views}, nil
}

// Record uploads raw batch b (from a loader with LoaderConfig.Raw and the
// same views) and records its views into r: outs[v] receives view v as
// [N, C, Size, Size], normalised, as the CPU loader's Batch.A and B. The
// uploads are queued at once and stay alive until the next Record, so
// submit r before calling Record again.
func (a *Augmenter) Record(r *gpu.Recorder, b *pipeline.Batch, outs ...*gpu.Tensor) error {
	if len(outs) != len(a.views) || len(b.Params) != len(a.views) {
		return fmt.Errorf("augment: %d views configured, batch has %d, %d outputs given", len(a.views), len(b.Params), len(outs))
	}
	if b.N == 0 || len(b.Images) != b.N {
		return fmt.Errorf("augment: batch of %d samples carries %d images; is the loader raw?", b.N, len(b.Images))
	}
	for _, t := range a.keep {
		t.Release()
	}
	a.keep = a.keep[:0]
	src, offs, err := a.upload(b.Images)
	if err != nil {
		return err
	}
	for v := range a.views {
		if err := a.view(r, &a.views[v], b, v, offs, src, outs[v]); err != nil {
			return fmt.Errorf("augment: view %d: %w", v, err)
		}
	}
	return nil
}

// upload packs the images' bytes, each from a 4-byte boundary, into one
// tensor the kernels read as u32 words; offs are the byte offsets.
func (a *Augmenter) upload(imgs []pipeline.Image8) (*gpu.Tensor, []int, error) {
	offs := make([]int, len(imgs))
	n := 0
	for i, m := range imgs {
		if m.C != 1 && m.C != 3 || len(m.Pix) != m.C*m.H*m.W || m.H == 0 || m.W == 0 {
			return nil, nil, fmt.Errorf("augment: image %d is %d×%d×%d with %d bytes", i, m.C, m.H, m.W, len(m.Pix))
		}
		offs[i] = n
		n += (len(m.Pix) + 3) &^ 3
	}
	if n >= 1<<32 {
		return nil, nil, fmt.Errorf("augment: %d bytes of images exceed the 32-bit offsets", n)
	}
	if cap(a.pix) < n {
		a.pix = make([]byte, n)
	}
	a.pix = a.pix[:n]
	for i, m := range imgs {
		copy(a.pix[offs[i]:], m.Pix)
	}
	t, err := a.tensor(unsafe.Slice((*float32)(unsafe.Pointer(&a.pix[0])), n/4))
	return t, offs, err
}

// tensor uploads words (any bit patterns) into a new tensor kept until the
// next Record.
func (a *Augmenter) tensor(words []float32) (*gpu.Tensor, error) {
	t, err := a.d.FromSlice(words, len(words))
	if err != nil {
		return nil, err
	}
	a.keep = append(a.keep, t)
	return t, nil
}

func (a *Augmenter) view(r *gpu.Recorder, v *pipeline.ViewConfig, b *pipeline.Batch, vi int, offs []int, src, out *gpu.Tensor) error {
	c, s, n := v.Channels(), v.Size, b.N
	if out.Len() != n*c*s*s {
		return fmt.Errorf("output %v, want %d×%d×%d×%d values", out.Shape, n, c, s, s)
	}
	meta := metaBlur + v.KernelSize()
	a.meta = a.meta[:0]
	u := func(x int) float32 { return math.Float32frombits(uint32(x)) }
	var kernel []float32
	for k := range n {
		img, p := &b.Images[k], &b.Params[vi][k]
		ax, bx, ay, by := p.Affine(s)
		rec := []float32{u(offs[k]), u(img.H), u(img.W), u(img.C), ax, bx, ay, by, u(b2i(p.Jittered))}
		for _, op := range p.Order {
			rec = append(rec, u(int(op)))
		}
		rec = append(rec, p.Factors[:]...)
		kernel = kernel[:0]
		if p.Blurred {
			kernel = pipeline.BlurKernel(kernel, s, s, v.KernelSize(), p.Sigma)
		}
		rec = append(rec, u(b2i(p.Gray)), u(b2i(p.Blurred)), u(b2i(p.Solarized)), u(len(kernel)/2))
		rec = append(rec, kernel...)
		for len(rec) < meta {
			rec = append(rec, 0)
		}
		a.meta = append(a.meta, rec...)
	}
	m, err := a.tensor(a.meta)
	if err != nil {
		return err
	}
	tmp, err := a.d.NewTensor(out.Len())
	if err != nil {
		return err
	}
	a.keep = append(a.keep, tmp)

	var mean, inv [3]float32
	for ch := range c {
		mean[ch], inv[ch] = v.Mean[ch], 1/v.Std[ch]
	}
	params := gpu.Params{}.U(n).U(s).F(v.SolarizeThreshold).F(mean[0]).F(mean[1]).F(mean[2]).F(inv[0]).F(inv[1]).F(inv[2])
	spec := func(stage shaders.AugmentStage) shaders.Augment {
		return shaders.Augment{Stage: stage, C: c, Meta: meta, Bicubic: v.Filter == pipeline.Bicubic}
	}
	tiles := (s + 15) / 16
	k, err := a.d.Kernel("augment", spec(shaders.AugmentResize))
	if err != nil {
		return err
	}
	if err := r.Dispatch(k, [3]int{tiles, tiles, n}, params, src, m, out); err != nil {
		return err
	}
	if k, err = a.d.Kernel("augment", spec(shaders.AugmentColour)); err != nil {
		return err
	}
	if err := r.Dispatch(k, [3]int{n, 1, 1}, params, m, out); err != nil {
		return err
	}
	for _, vertical := range []bool{false, true} {
		sp := spec(shaders.AugmentBlur)
		sp.Vertical = vertical
		if k, err = a.d.Kernel("augment", sp); err != nil {
			return err
		}
		from, to := out, tmp
		if vertical {
			from, to = tmp, out
		}
		if err := r.Dispatch(k, [3]int{tiles, tiles, n * c}, params, m, from, to); err != nil {
			return err
		}
	}
	if k, err = a.d.Kernel("augment", spec(shaders.AugmentFinish)); err != nil {
		return err
	}
	groups := (out.Len() + 255) / 256
	maxWG := int(a.d.Limits.MaxComputeWorkgroupsPerDimension)
	gx := min(groups, maxWG)
	return r.Dispatch(k, [3]int{gx, (groups + gx - 1) / gx, 1}, params, m, out)
}

func b2i(b bool) int {
	if b {
		return 1
	}
	return 0
}

// Close releases the last batch's device memory.
func (a *Augmenter) Close() {
	for _, t := range a.keep {
		t.Release()
	}
	a.keep = nil
}
