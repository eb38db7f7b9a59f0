package shaders

import (
	"slices"
	"strings"
	"testing"
)

func TestRender(t *testing.T) {
	src, err := Render("reduce", Spec{"Op": "sum", "BX": 32, "BY": 8, "Subgroups": false})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"fn total(v: f32, lx: u32, ly: u32) -> f32", "array<f32, 256>", "@workgroup_size(256)"} {
		if !strings.Contains(src, want) {
			t.Errorf("rendered reduce lacks %q", want)
		}
	}
	// With Subgroups, a workgroup of one column sums in subgroups; the
	// tree's loop is gone.
	src, err = Render("reduce", Spec{"Op": "sum", "BX": 1, "BY": 256, "Subgroups": true})
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"subgroupAdd(v)", "@builtin(subgroup_id)", "@workgroup_size(256)"} {
		if !strings.Contains(src, want) {
			t.Errorf("reduce with subgroups lacks %q", want)
		}
	}
	if strings.Contains(src, "s >> 1u") {
		t.Error("reduce with subgroups still has the tree")
	}
	if _, err := Render("reduce", Spec{"Op": "sum", "BX": 32, "Subgroups": false}); err == nil || !strings.Contains(err.Error(), "BY") {
		t.Errorf("a missing specialisation gave %v", err)
	}
	if _, err := Render("nope", Spec{}); err == nil {
		t.Error("an unknown kernel rendered")
	}
	if k := (Spec{"b": 1, "a": "x"}).Key(); k != "a=x,b=1" {
		t.Errorf("Key %q is not sorted", k)
	}
	names := Names()
	if !slices.Contains(names, "gemm") || slices.Contains(names, "lib") {
		t.Errorf("Names %v", names)
	}
}
