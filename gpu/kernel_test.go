package gpu

import (
	"reflect"
	"strings"
	"testing"
)

// TestParseParams reads struct Params as the shaders write it (comments,
// several fields on a line, a trailing comma) and refuses what one word per
// field cannot pack.
func TestParseParams(t *testing.T) {
	cases := []struct {
		name string
		src  string
		want []field
		err  string
	}{
		{"shader style", `// struct Params { x: vec4<f32> } in a comment is not the struct
struct Params {
  n: u32,  // samples
  mean0: f32, mean1: f32, /* a block comment, */
  shift: i32,
}
@group(0) @binding(0) var<uniform> p: Params;`,
			[]field{{"n", u32}, {"mean0", f32}, {"mean1", f32}, {"shift", i32}}, ""},
		{"no trailing comma", "struct Params { n: u32, eps: f32 }", []field{{"n", u32}, {"eps", f32}}, ""},
		{"no struct", "struct Other { n: u32 }", nil, "no struct Params"},
		{"vector field", "struct Params { n: u32, v: vec4<f32> }", nil, `"v: vec4<f32>"`},
		{"wide scalar", "struct Params { n: u32, x: f16 }", nil, `field "x" has type f16`},
		{"aligned field", "struct Params { @align(16) n: u32 }", nil, `"@align(16) n: u32"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseParams(tc.src)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("got %v, %v; want an error containing %q", got, err, tc.err)
				}
				return
			}
			if err != nil || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tc.want)
			}
		})
	}
}
