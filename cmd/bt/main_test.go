package main

import (
	"bytes"
	"errors"
	"flag"
	"strings"
	"testing"
)

// TestHelp: pretrain's help is grouped under headings, names each flag's
// kind, and is asked for with -h (flag.ErrHelp, which main prints to
// stdout); a mistyped flag gives the error with the nearest name.
func TestHelp(t *testing.T) {
	if err := runPretrain([]string{"-h"}); !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("-h gave %v, want flag.ErrHelp", err)
	}
	var b bytes.Buffer
	printHelp(&b, lastFlags)
	for _, want := range []string{"Usage: bt pretrain", "Data:", "Model:", "Loss:", "Optimisation:", "Run:", "-batch int", "-data name", "-lr float"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
	err := runPretrain([]string{"-bacth", "3"})
	if err == nil || flagHint(err) != "; did you mean -batch?" {
		t.Errorf("-bacth: %v, hint %q", err, flagHint(err))
	}
	for in, want := range map[string]string{"pretrian": "; did you mean pretrain?", "evl": "; did you mean eval?", "zzzzzz": ""} {
		if got := suggest(in, commandNames(), ""); got != want {
			t.Errorf("suggest(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestEvalModes: modes and flags may come in any order, all runs kNN and
// the probe, modes run once each in a fixed order, and an unknown mode is
// an error naming the nearest.
func TestEvalModes(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
		err  string
	}{
		{[]string{"embed", "-out", "x"}, "embed", ""},
		{[]string{"linear", "knn", "knn"}, "knn linear", ""},
		{[]string{"all", "semi"}, "knn linear semi", ""},
		{nil, "knn linear", ""},
		{[]string{"knnn"}, "", "did you mean knn?"},
	} {
		fs := flag.NewFlagSet("t", flag.ContinueOnError)
		fs.String("out", "", "")
		modes, err := parseInterleaved(fs, c.args)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: %v, want an error with %q", c.args, err, c.err)
			}
			continue
		}
		if err != nil || strings.Join(modes, " ") != c.want {
			t.Errorf("%v: %v, %v; want %s", c.args, modes, err, c.want)
		}
	}
}

// TestEvalRefusals: bt eval refuses, before opening anything, flags that
// would be ignored or cannot apply to the modes asked for.
func TestEvalRefusals(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-random", "-precision", "f16", "semi"}, "-precision f16: semi fine-tunes"},
		{[]string{"-random", "-precision", "f64", "knn"}, "flag -precision"},
		{[]string{"-random", "-out", "x", "knn"}, "-out applies to the embed mode"},
		{[]string{"-random", "-fast", "knn"}, "-fast applies to the linear mode"},
		{[]string{"-random", "-split", "validation", "embed"}, "-split chooses the split of the knn, linear and semi figures"},
		{[]string{"-random", "-val-seed", "3", "knn"}, "-val-seed draws the images -val-fraction holds out"},
	} {
		err := runEval(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bt eval %v: %v, want an error with %q", c.args, err, c.want)
		}
	}
}
