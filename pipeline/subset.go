package pipeline

import (
	"fmt"
	"math/rand/v2"
)

// Subset is a dataset restricted to some of another's images, in a given
// order: a labelled fraction for semi-supervised fine-tuning, or a sample
// for a quick evaluation.
type Subset struct {
	Dataset
	Indices []int
}

// NewSubset returns the images of ds at indices.
func NewSubset(ds Dataset, indices []int) (*Subset, error) {
	for _, i := range indices {
		if i < 0 || i >= ds.Len() {
			return nil, fmt.Errorf("pipeline: subset index %d outside the dataset's %d images", i, ds.Len())
		}
	}
	if len(indices) == 0 {
		return nil, fmt.Errorf("pipeline: empty subset")
	}
	return &Subset{Dataset: ds, Indices: indices}, nil
}

// Sample returns n images of ds drawn without replacement by seed, or ds
// itself when n is 0 or not smaller than ds.
func Sample(ds Dataset, n int, seed uint64) (Dataset, error) {
	if n <= 0 || n >= ds.Len() {
		return ds, nil
	}
	perm := rand.New(rand.NewPCG(seed, 0x5a)).Perm(ds.Len())
	return NewSubset(ds, perm[:n])
}

// Len is the number of images in the subset.
func (s *Subset) Len() int { return len(s.Indices) }

// Label is image i's label.
func (s *Subset) Label(i int) int { return s.Dataset.Label(s.Indices[i]) }

// Load decodes image i.
func (s *Subset) Load(i int, dst *Image) error { return s.Dataset.Load(s.Indices[i], dst) }
