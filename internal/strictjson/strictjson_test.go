package strictjson

import (
	"strings"
	"testing"
)

type inner struct {
	Arch string `json:"arch"`
	NoBN bool   `json:"no_bn,omitempty"`
}

type settings struct {
	Batch int    `json:"batch"`
	Model inner  `json:"model"`
	Note  string `json:"note,omitempty"`
}

func TestDecode(t *testing.T) {
	for _, c := range []struct {
		name, in string
		err      string // "" for success
	}{
		{"complete", `{"batch": 32, "model": {"arch": "tiny"}}`, ""},
		{"optional given", `{"batch": 32, "model": {"arch": "tiny", "no_bn": true}, "note": "x"}`, ""},
		{"misspelt key", `{"baWch": 32, "model": {"arch": "tiny"}}`, `unknown field "baWch"`},
		{"missing key", `{"model": {"arch": "tiny"}}`, `missing key "batch"`},
		{"missing nested key", `{"batch": 32, "model": {}}`, `missing key "model.arch"`},
		{"misspelt nested key", `{"batch": 32, "model": {"arch": "tiny", "nobn": true}}`, `unknown field "nobn"`},
		{"wrong type", `{"batch": "32", "model": {"arch": "tiny"}}`, "cannot unmarshal"},
		{"trailing data", `{"batch": 32, "model": {"arch": "tiny"}} {}`, "trailing data"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var s settings
			err := Decode([]byte(c.in), &s)
			if c.err == "" {
				if err != nil || s.Batch != 32 || s.Model.Arch != "tiny" {
					t.Fatalf("got %+v, %v", s, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Fatalf("got %v, want an error containing %q", err, c.err)
			}
		})
	}
}
