// Package enum checks and parses the text of bt's enumerated settings:
// string types with a fixed list of values (train.Precision,
// optim.Kind, pipeline.PresetName, …), whose UnmarshalText refuses any
// other value, naming it and the values there are.
package enum

import (
	"fmt"
	"slices"
	"strings"
)

// Check returns nil when v is one of choices, else an error that begins
// with what (the package and the setting, "train: precision"), quotes v
// and lists the choices.
func Check[T ~string](what string, v T, choices []T) error {
	if slices.Contains(choices, v) {
		return nil
	}
	return fmt.Errorf("%s %q: choose one of %s", what, string(v), Join(choices, ", "))
}

// Parse is text as a T when Check accepts it.
func Parse[T ~string](what string, text []byte, choices []T) (T, error) {
	v := T(text)
	return v, Check(what, v, choices)
}

// Join is the choices' text joined by sep, for messages and help.
func Join[T ~string](choices []T, sep string) string {
	s := make([]string, len(choices))
	for i, c := range choices {
		s[i] = string(c)
	}
	return strings.Join(s, sep)
}
