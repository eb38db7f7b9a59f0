package pipeline

import "testing"

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
