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
	for _, want := range []string{"fn total(v: f32, lx: u32, ly: u32) -> f32", "array<f32, 256>", "@workgroup_size(32, 8)"} {
		if !strings.Contains(src, want) {
			t.Errorf("rendered reduce lacks %q", want)
		}
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
