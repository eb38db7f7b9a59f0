// Package encoder embeds images with a pretrained backbone: it loads a
// checkpoint together with the preprocessing the backbone was trained
// with, so that a program cannot feed it images prepared another way.
//
//	d, err := gpu.Open(gpu.Options{})
//	defer d.Release()
//	enc, err := encoder.Load(d, "runs/demo/checkpoint.safetensors")
//	defer enc.Release()
//	z, err := enc.Embed(images) // one representation per image
package encoder

import (
	"fmt"
	"image"
	"math/rand/v2"

	"github.com/bt-org/bt/bt/eval"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/pipeline"
)

// Encoder is a backbone in evaluation mode with its preprocessing.
type Encoder struct {
	Dim int // width of a representation
	// View is the preprocessing: the training preset's resize, centre
	// crop and normalisation at the size the backbone was trained at.
	View pipeline.ViewConfig
	// Batch is how many images go to the device at once (default 64).
	Batch int

	d     *gpu.Device
	model *train.Model
	aug   *pipeline.Augmenter
}

// Load reads a checkpoint written by bt pretrain or bt export; both record
// the network and its data's preprocessing.
func Load(d *gpu.Device, path string) (*Encoder, error) {
	c, err := train.LoadCheckpoint(path)
	if err != nil {
		return nil, err
	}
	view, err := c.Data.EvalView()
	if err != nil {
		return nil, fmt.Errorf("encoder: %s: %w", path, err)
	}
	aug, err := pipeline.NewAugmenter(view)
	if err != nil {
		return nil, err
	}
	m, err := c.Backbone(d)
	if err != nil {
		return nil, err
	}
	return &Encoder{Dim: m.Backbone.Dim, View: view, Batch: 64, d: d, model: m, aug: aug}, nil
}

// Embed returns the representation of each image, in order.
func (e *Encoder) Embed(images []image.Image) ([][]float32, error) {
	c, s := e.View.Channels(), e.View.Size
	var src pipeline.Image
	rng := rand.New(rand.NewPCG(0, 0)) // the evaluation view draws nothing
	out := make([][]float32, 0, len(images))
	for start := 0; start < len(images); start += max(e.Batch, 1) {
		batch := images[start:min(start+max(e.Batch, 1), len(images))]
		x := make([]float32, len(batch)*c*s*s)
		for i, img := range batch {
			if img == nil || img.Bounds().Empty() {
				return nil, fmt.Errorf("encoder: image %d is empty", start+i)
			}
			pipeline.FromImage(&src, img, c)
			e.aug.View(x[i*c*s*s:(i+1)*c*s*s], &src, rng)
		}
		z, err := e.EmbedPrepared(x, len(batch))
		if err != nil {
			return nil, err
		}
		for i := range batch {
			out = append(out, z[i*e.Dim:(i+1)*e.Dim:(i+1)*e.Dim])
		}
	}
	return out, nil
}

// EmbedPrepared embeds n images already preprocessed as View prescribes,
// x [n, C, Size, Size], and returns their representations [n, Dim].
func (e *Encoder) EmbedPrepared(x []float32, n int) ([]float32, error) {
	return eval.Represent(e.d, e.model.Backbone, x, n, e.View.Channels(), e.View.Size, e.View.Size, gpu.F32)
}

// Release frees the backbone.
func (e *Encoder) Release() { e.model.Release() }
