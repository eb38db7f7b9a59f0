package gpu_test

import (
	"strings"
	"testing"

	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/shaders"
)

// TestParamsChecked dispatches the fma kernel, whose struct Params is
// {iters: u32, a: f32, b: f32, pad: u32}, with correct and wrong parameter
// words: every mismatch must be an error naming the field, before anything
// reaches the device.
func TestParamsChecked(t *testing.T) {
	d := gputest.Device(t)
	k, err := d.Kernel("fma", shaders.FMA{Chains: 1, Unroll: 1, Threads: shaders.Threads{WG: 64}})
	if err != nil {
		t.Fatal(err)
	}
	y, err := d.NewTensor(64)
	if err != nil {
		t.Fatal(err)
	}
	defer y.Release()
	// good is a function, not a value: appending to one shared Params
	// would let the cases overwrite each other's last word.
	good := func() gpu.Params { return gpu.Params{}.U(1).F(1).F(0) }
	cases := []struct {
		name   string
		params gpu.Params
		want   string // "" for no error
	}{
		{"correct", good().U(0), ""},
		{"missing trailing word", good(), `Params field 4 "pad" is u32, got no value`},
		{"no words", gpu.Params{}, `Params field 1 "iters" is u32, got no value`},
		{"extra word", good().U(0).U(0), `Params value 5 (u32) is beyond struct Params's 4 fields`},
		{"f32 for u32", gpu.Params{}.F(1).F(1).F(0).U(0), `Params field 1 "iters" is u32, got f32`},
		{"u32 for f32", gpu.Params{}.U(1).U(1).F(0).U(0), `Params field 2 "a" is f32, got u32`},
		{"i32 for u32", good().I(0), `Params field 4 "pad" is u32, got i32`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := d.Run(func(r *gpu.Recorder) error {
				return r.Dispatch(k, [3]int{1, 1, 1}, tc.params, y)
			})
			d.Sync()
			if tc.want == "" {
				if err != nil {
					t.Fatalf("correct parameters refused: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "kernel fma{") || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got error %v, want one naming kernel fma and containing %q", err, tc.want)
			}
		})
	}
}
