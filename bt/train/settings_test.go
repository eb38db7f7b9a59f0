package train

import (
	"encoding"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/optim"
	"github.com/bt-org/bt/pipeline"
)

// TestSettingsText checks every enumerated setting's text: its names
// read back as themselves, "" (unset: read from files that record no run
// settings) everywhere but a recipe, and anything else refused with an error that quotes it
// and lists the names there are.
func TestSettingsText(t *testing.T) {
	type text interface {
		encoding.TextMarshaler
		encoding.TextUnmarshaler
	}
	for _, tc := range []struct {
		name   string
		new    func() text
		good   []string
		empty  bool
		choice string // in the refusal
	}{
		{"precision", func() text { return new(Precision) }, []string{"f32", "f16"}, true, "f32, f16"},
		{"augment on", func() text { return new(AugmentPlace) }, []string{"auto", "cpu", "device"}, true, "auto, cpu, device"},
		{"recipe", func() text { return new(Recipe) }, []string{"paper", "short"}, false, "paper, short"},
		{"optimiser", func() text { return new(optim.Kind) }, []string{"lars", "sgd", "adamw"}, true, "lars, sgd, adamw"},
		{"augmentation preset", func() text { return new(pipeline.PresetName) }, []string{"imagenet", "cifar", "fashion-mnist", "mnist"}, true, "imagenet, cifar, fashion-mnist, mnist"},
		{"augmentation ablation", func() text { return new(pipeline.Ablation) }, []string{"no-color", "crop+blur", "crop"}, true, "no-color, crop+blur, crop"},
		{"projector", func() text { return new(Projector) }, []string{"512-512-512", "16", "8192-8192-8192"}, true, "8192-8192-8192"},
	} {
		for _, g := range tc.good {
			v := tc.new()
			if err := v.UnmarshalText([]byte(g)); err != nil {
				t.Errorf("%s %q: %v", tc.name, g, err)
				continue
			}
			if back, err := v.MarshalText(); err != nil || string(back) != g {
				t.Errorf("%s %q is written %q, %v", tc.name, g, back, err)
			}
		}
		if err := tc.new().UnmarshalText(nil); (err == nil) != tc.empty {
			t.Errorf("%s \"\": %v; want accepted %v", tc.name, err, tc.empty)
		}
		for _, bad := range []string{"nope", strings.ToUpper(tc.good[0]) + "x", "512-0"} {
			err := tc.new().UnmarshalText([]byte(bad))
			if err == nil || !strings.Contains(err.Error(), `"`+bad+`"`) || !strings.Contains(err.Error(), tc.choice) {
				t.Errorf("%s %q: %v; want an error quoting it and naming %s", tc.name, bad, err, tc.choice)
			}
		}
	}
	var c Config
	err := json.Unmarshal([]byte(`{"precision": "f8", "optimizer": "lars"}`), &c)
	if err == nil || !strings.Contains(err.Error(), `precision "f8": choose one of f32, f16`) {
		t.Errorf("a config.json of precision f8: %v", err)
	}
}

// TestResolved checks that Resolve works out the views, the projector's
// widths and the network's input once, as Data.Views and the projector's
// text say, and that what takes a Resolved refuses one that Resolve did
// not make.
func TestResolved(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Model.Projector = "64-32"
	rc, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	views, err := cfg.Data.Views()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(rc.Views(), views) || !reflect.DeepEqual(rc.Widths(), []int{64, 32}) || rc.Dim() != 32 {
		t.Errorf("resolved views %+v, widths %v, dim %d; want %+v, [64 32], 32", rc.Views(), rc.Widths(), rc.Dim(), views)
	}
	got := rc.Config()
	if got.Model.InChannels != 1 || got.Model.Stem != "small" {
		t.Errorf("resolved model %+v; want 1 channel and the small stem of 28-px views", got.Model)
	}
	if got.Model.InChannels, got.Model.Stem = cfg.Model.InChannels, cfg.Model.Stem; got != cfg {
		t.Errorf("Resolve changed other settings: %+v", got)
	}
	rc.Widths()[1] = 7
	if rc.Dim() != 32 {
		t.Error("Widths hands out the Resolved's own slice")
	}
	cfg.Model.Projector, cfg.Precision = "64-0", "f8"
	if _, err := cfg.Resolve(); err == nil || !strings.Contains(err.Error(), "projector") || !strings.Contains(err.Error(), "precision") {
		t.Errorf("a bad projector and precision: %v; want both named", err)
	}
	if _, err := CheckMemory(nil, Resolved{}, MemoryCheck{}); !errors.Is(err, errUnresolved) {
		t.Errorf("CheckMemory of an unresolved configuration: %v", err)
	}
	if _, err := ChooseExchange(nil, Resolved{}, 2, AutoExchange); !errors.Is(err, errUnresolved) {
		t.Errorf("ChooseExchange of an unresolved configuration: %v", err)
	}
}
