package selfcheck

import (
	"maps"
	"slices"
	"testing"

	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/shaders"
)

// TestSuite runs every check on the test adapter, each with its own logged
// seed, and then asserts that every shader file was dispatched by at least
// one of them: a new shader without a check fails here.
func TestSuite(t *testing.T) {
	d := gputest.Device(t)
	ran := map[string]bool{}
	names := map[string]bool{}
	for _, c := range Checks() {
		if names[c.Name] {
			t.Errorf("two checks are named %q", c.Name)
		}
		names[c.Name] = true
		t.Run(c.Name, func(t *testing.T) {
			before := d.Dispatches()
			if err := c.Run(d, gputest.Rand(t)); err != nil {
				t.Error(err)
			}
			after := d.Dispatches()
			var used []string
			for s, n := range after {
				if n > before[s] {
					ran[s] = true
					used = append(used, s)
				}
			}
			if len(used) == 0 {
				t.Error("dispatched no kernel")
			}
			slices.Sort(used)
			t.Logf("shaders: %v", used)
		})
	}
	for _, s := range shaders.Names() {
		if !ran[s] {
			t.Errorf("shaders/%s.wgsl is dispatched by no check; add one to Checks", s)
		}
	}
	if t.Failed() {
		t.Logf("shaders dispatched: %v", slices.Sorted(maps.Keys(ran)))
	}
}
