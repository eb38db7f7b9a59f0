package pipeline

import (
	"fmt"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/bt-org/bt/internal/fixture"
)

func TestSubset(t *testing.T) {
	ds, err := NewSynthetic(SyntheticConfig{Count: 50, Size: 8, Channels: 1, Classes: 5, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSubset(ds, []int{7, 3})
	if err != nil {
		t.Fatal(err)
	}
	if s.Len() != 2 || s.Label(0) != ds.Label(7) || s.Label(1) != ds.Label(3) {
		t.Fatalf("subset labels %d %d, want %d %d", s.Label(0), s.Label(1), ds.Label(7), ds.Label(3))
	}
	var a, b Image
	if err := s.Load(1, &a); err != nil {
		t.Fatal(err)
	}
	if err := ds.Load(3, &b); err != nil {
		t.Fatal(err)
	}
	for i := range a.Pix {
		if a.Pix[i] != b.Pix[i] {
			t.Fatal("subset image differs from the dataset's")
		}
	}
	if _, err := NewSubset(ds, []int{50}); err == nil {
		t.Error("an index past the end was accepted")
	}
	sm, err := Sample(ds, 20, 1)
	if err != nil || sm.Len() != 20 {
		t.Fatalf("Sample: %v, %v", sm, err)
	}
	seen := map[int]bool{}
	for _, i := range sm.(*Subset).Indices {
		if seen[i] {
			t.Fatalf("index %d drawn twice", i)
		}
		seen[i] = true
	}
	if all, _ := Sample(ds, 0, 1); all != Dataset(ds) {
		t.Error("Sample with n 0 should return the dataset itself")
	}
}

func TestWithout(t *testing.T) {
	c, err := Preset("cifar")
	if err != nil {
		t.Fatal(err)
	}
	nc, err := c.Without("no-color")
	if err != nil || nc.A.JitterP != 0 || nc.B.GrayP != 0 || nc.A.FlipP != c.A.FlipP {
		t.Errorf("no-color: %+v %v", nc.A, err)
	}
	cb, err := c.Without("crop+blur")
	if err != nil || cb.A.BlurP != 1 || cb.B.BlurP != 0.1 || cb.A.FlipP != 0 || cb.B.SolarizeP != 0 || cb.A.Crop != RandomResizedCrop {
		t.Errorf("crop+blur: %+v %v", cb.A, err)
	}
	cr, err := c.Without("crop")
	if err != nil || cr.A.BlurP != 0 || cr.B.SolarizeP != 0 || cr.A.JitterP != 0 || cr.A.FlipP != 0 {
		t.Errorf("crop: %+v %v", cr.A, err)
	}
	if c.A.JitterP == 0 {
		t.Error("Without changed the original configuration")
	}
	if _, err := c.Without("rotate"); err == nil {
		t.Error("an unknown ablation was accepted")
	}
}

// TestSubsetOfFolderIsEncoded: a subset of a folder keeps the loader's fast
// path (header first, scaled decoding, 8-bit images for the device). A
// subset of every image in order is the folder itself to the loader, so
// its raw and augmented batches must be the folder's exactly, with images
// decoded below full size; a permuted subset reads the files it names.
func TestSubsetOfFolderIsEncoded(t *testing.T) {
	root := t.TempDir()
	const n = 4
	for i := range n {
		writeImage(t, filepath.Join(root, SyntheticClasses[i%2], strconv.Itoa(i)+".jpg"), encJPEG, photo(t, 300+20*i, 200, false))
	}
	d, err := OpenFolder(root, FolderOptions{})
	must(t, err)
	all, err := NewSubset(d, []int{0, 1, 2, 3})
	must(t, err)
	if _, ok := all.(Encoded); !ok {
		t.Fatal("a subset of a folder is not Encoded: the loader would decode its images at full size through Load")
	}
	syn := smallSynthetic(t, 10)
	s, err := NewSubset(syn, []int{1})
	must(t, err)
	if _, ok := s.(Encoded); ok {
		t.Fatal("a subset of a synthetic dataset claims to be Encoded")
	}
	aug := smallConfig()
	for _, raw := range []bool{false, true} {
		cfg := LoaderConfig{BatchSize: 2, Workers: 2, Seed: 3, Shuffle: true, Epochs: 2, Raw: raw}
		run := func(ds Dataset) []Batch {
			l, err := NewLoader(ds, aug, cfg)
			must(t, err)
			defer l.Close()
			return collect(t, l, false)
		}
		got, want := run(all), run(d)
		equalBatches(t, fmt.Sprintf("raw=%v", raw), got, want)
		if !raw {
			continue
		}
		scaled := false
		for i := range got {
			for k := range got[i].N {
				g, w := &got[i].Images[k], &want[i].Images[k]
				if g.H != w.H || g.W != w.W || !slices.Equal(g.Pix, w.Pix) || got[i].Params[0][k] != want[i].Params[0][k] || got[i].Params[1][k] != want[i].Params[1][k] {
					t.Fatalf("batch %d sample %d: the subset's raw image or draws differ from the folder's", i, k)
				}
				scaled = scaled || g.W < 300
			}
		}
		if !scaled {
			t.Error("no image of the subset was decoded below full size")
		}
	}

	perm, err := NewSubset(d, []int{3, 1})
	must(t, err)
	enc := perm.(Encoded)
	_, hdr, err := enc.ReadFile(0, nil)
	must(t, err)
	if hdr.W != 360 || enc.Path(0) != d.Path(3) || enc.Path(1) != d.Path(1) {
		t.Errorf("subset image 0 is %s, %d px wide; want %s, 360 px", enc.Path(0), hdr.W, d.Path(3))
	}
}

// TestHoldout checks that a holdout splits the images in two disjoint
// parts that cover them all, in order, that the same seed holds out the
// same images and another seed others, and that impossible sizes are
// refused.
func TestHoldout(t *testing.T) {
	ds, err := NewSynthetic(SyntheticConfig{Count: 103, Size: 8, Channels: 1, Classes: 5, Seed: 2})
	if err != nil {
		t.Fatal(err)
	}
	indices := func(d Dataset) []int { return d.(*Subset).Indices }
	keep, held, err := Holdout(ds, 17, 4)
	if err != nil {
		t.Fatal(err)
	}
	if keep.Len() != 86 || held.Len() != 17 {
		t.Fatalf("kept %d and held %d of 103, want 86 and 17", keep.Len(), held.Len())
	}
	all := append(slices.Clone(indices(keep)), indices(held)...)
	slices.Sort(all)
	for i, v := range all {
		if v != i {
			t.Fatalf("the two parts do not cover the images once each: position %d holds %d", i, v)
		}
	}
	for _, part := range [][]int{indices(keep), indices(held)} {
		if !slices.IsSorted(part) {
			t.Fatalf("a part is not in the dataset's order: %v", part)
		}
	}
	if held.Label(0) != ds.Label(indices(held)[0]) {
		t.Error("a held-out image's label is not its dataset's")
	}
	_, again, err := Holdout(ds, 17, 4)
	if err != nil || !slices.Equal(indices(again), indices(held)) {
		t.Errorf("the same seed held out %v, then %v (%v)", indices(held), indices(again), err)
	}
	_, other, err := Holdout(ds, 17, 5)
	if err != nil || slices.Equal(indices(other), indices(held)) {
		t.Errorf("seeds 4 and 5 held out the same images %v (%v)", indices(other), err)
	}
	for _, n := range []int{0, -1, 103, 200} {
		if _, _, err := Holdout(ds, n, 4); err == nil {
			t.Errorf("holding out %d of 103 images was accepted", n)
		}
	}
}

// TestHoldoutMatchesPython checks that Holdout holds out exactly the images
// the same-recipe reference's copy of it does (tools/reference/valsplit.py,
// which wrote the fixture: tools/fixtures/holdout.py), among them bt's
// default validation split of Fashion-MNIST, so that the reference trains
// and evaluates on bt's splits.
func TestHoldoutMatchesPython(t *testing.T) {
	f, err := fixture.Load(filepath.Join("testdata", "holdout.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	cases, err := f.Int("cases")
	if err != nil {
		t.Fatal(err)
	}
	if cases == 0 {
		t.Fatal("the fixture holds no cases")
	}
	for c := range cases {
		name := "case" + strconv.Itoa(c)
		m, ok := f.Meta[name].([]any)
		if !ok || len(m) != 3 {
			t.Fatalf("fixture meta %s = %v, want [length, n, seed]", name, f.Meta[name])
		}
		length, n := int(m[0].(float64)), int(m[1].(float64))
		seed, err := strconv.ParseUint(m[2].(string), 10, 64)
		if err != nil {
			t.Fatalf("fixture meta %s: seed: %v", name, err)
		}
		want, err := f.Get(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(fmt.Sprintf("%d_of_%d_seed_%d", n, length, seed), func(t *testing.T) {
			ds, err := NewSynthetic(SyntheticConfig{Count: length, Size: 8, Channels: 1, Classes: 2})
			if err != nil {
				t.Fatal(err)
			}
			_, held, err := Holdout(ds, n, seed)
			if err != nil {
				t.Fatal(err)
			}
			got := held.(*Subset).Indices
			if len(got) != len(want.Data) {
				t.Fatalf("held out %d images, Python %d", len(got), len(want.Data))
			}
			for i, v := range got {
				if float64(v) != want.Data[i] {
					t.Fatalf("held-out image %d is %d, Python's %v", i, v, want.Data[i])
				}
			}
		})
	}
}
