package enum

import "testing"

type colour string

func TestParse(t *testing.T) {
	choices := []colour{"red", "green"}
	for _, tc := range []struct {
		text, err string
	}{
		{"red", ""},
		{"green", ""},
		{"blue", `paint: colour "blue": choose one of red, green`},
		{"", `paint: colour "": choose one of red, green`},
		{"Red", `paint: colour "Red": choose one of red, green`},
	} {
		v, err := Parse("paint: colour", []byte(tc.text), choices)
		switch {
		case tc.err == "" && (err != nil || v != colour(tc.text)):
			t.Errorf("Parse(%q) = %q, %v; want it accepted", tc.text, v, err)
		case tc.err != "" && (err == nil || err.Error() != tc.err):
			t.Errorf("Parse(%q): error %v; want %q", tc.text, err, tc.err)
		}
	}
	if got := Join(choices, " or "); got != "red or green" {
		t.Errorf("Join = %q", got)
	}
}
