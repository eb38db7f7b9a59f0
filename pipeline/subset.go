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

// NewSubset returns the images of ds at indices: a *Subset, or for an
// Encoded ds (a Folder) a subset that is Encoded too, so that the loader
// reads its files, draws from their headers and decodes them scaled, for
// the CPU and for the device, as it does the whole folder's.
func NewSubset(ds Dataset, indices []int) (Dataset, error) {
	for _, i := range indices {
		if i < 0 || i >= ds.Len() {
			return nil, fmt.Errorf("pipeline: subset index %d outside the dataset's %d images", i, ds.Len())
		}
	}
	if len(indices) == 0 {
		return nil, fmt.Errorf("pipeline: empty subset")
	}
	s := &Subset{Dataset: ds, Indices: indices}
	if enc, ok := ds.(Encoded); ok {
		return &encodedSubset{Subset: s, enc: enc}, nil
	}
	return s, nil
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

// encodedSubset is a Subset of an Encoded dataset. Subset's embedded
// Dataset hides the methods of what it holds, so these pass Encoded's on.
type encodedSubset struct {
	*Subset
	enc Encoded
}

// ReadFile reads image i's file.
func (s *encodedSubset) ReadFile(i int, buf []byte) ([]byte, ImageHeader, error) {
	return s.enc.ReadFile(s.Indices[i], buf)
}

// Path names image i's file.
func (s *encodedSubset) Path(i int) string { return s.enc.Path(s.Indices[i]) }

// Holdout splits ds into the images it keeps and n of them held out,
// drawn without replacement by seed (the same n and seed hold out the same
// images of the same data), each part in ds's order: a validation split
// of a training set.
func Holdout(ds Dataset, n int, seed uint64) (keep, held Dataset, err error) {
	if n < 1 || n >= ds.Len() {
		return nil, nil, fmt.Errorf("pipeline: holding out %d of %d images: want at least 1 and fewer than all", n, ds.Len())
	}
	out := make([]bool, ds.Len())
	for _, i := range rand.New(rand.NewPCG(seed, 0x6f7574)).Perm(ds.Len())[:n] {
		out[i] = true
	}
	k, h := make([]int, 0, ds.Len()-n), make([]int, 0, n)
	for i, o := range out {
		if o {
			h = append(h, i)
		} else {
			k = append(k, i)
		}
	}
	if keep, err = NewSubset(ds, k); err != nil {
		return nil, nil, err
	}
	if held, err = NewSubset(ds, h); err != nil {
		return nil, nil, err
	}
	return keep, held, nil
}
