package train

import (
	"fmt"

	"github.com/bt-org/bt/internal/enum"
	"github.com/bt-org/bt/models"
)

// Precision is where a run's activations live (Config.Precision). Its
// text is its name; UnmarshalText refuses any other and takes "", the
// zero value of configurations written before the setting, which means
// F32.
type Precision string

// The precisions.
const (
	// F32 keeps everything in f32.
	F32 Precision = "f32"
	// F16 is mixed precision: activations and their gradients stored as
	// f16, the arithmetic, parameters, optimiser state, BatchNorm
	// statistics and the loss in f32.
	F16 Precision = "f16"
)

// Precisions are Config.Precision's values.
func Precisions() []Precision { return []Precision{F32, F16} }

// Check is nil for a precision's name or "".
func (p Precision) Check() error {
	if p == "" {
		return nil
	}
	return enum.Check("train: precision", p, Precisions())
}

func (p Precision) String() string { return string(p) }

// MarshalText is p's name ("" stays "").
func (p Precision) MarshalText() ([]byte, error) { return []byte(p), nil }

// UnmarshalText takes a precision's name, or "".
func (p *Precision) UnmarshalText(text []byte) error {
	v := Precision(text)
	if err := v.Check(); err != nil {
		return err
	}
	*p = v
	return nil
}

// AugmentPlace is where the views are augmented (DataConfig.AugmentOn).
// Its text is its name; UnmarshalText refuses any other and takes "",
// the zero value of configurations written before the setting, which
// means AugmentAuto.
type AugmentPlace string

// The places.
const (
	// AugmentAuto is the device unless the adapter is a CPU, where the
	// loader's workers are faster.
	AugmentAuto AugmentPlace = "auto"
	// AugmentCPU augments in the loader's workers.
	AugmentCPU AugmentPlace = "cpu"
	// AugmentDevice augments on the device (package augment), from raw
	// batches, inside the step's recording.
	AugmentDevice AugmentPlace = "device"
)

// AugmentPlaces are DataConfig.AugmentOn's values.
func AugmentPlaces() []AugmentPlace { return []AugmentPlace{AugmentAuto, AugmentCPU, AugmentDevice} }

// Check is nil for a place's name or "".
func (a AugmentPlace) Check() error {
	if a == "" {
		return nil
	}
	return enum.Check("train: augment on", a, AugmentPlaces())
}

func (a AugmentPlace) String() string { return string(a) }

// MarshalText is a's name ("" stays "").
func (a AugmentPlace) MarshalText() ([]byte, error) { return []byte(a), nil }

// UnmarshalText takes a place's name, or "".
func (a *AugmentPlace) UnmarshalText(text []byte) error {
	v := AugmentPlace(text)
	if err := v.Check(); err != nil {
		return err
	}
	*a = v
	return nil
}

// Projector is a projector's layer widths in their text form, such as
// "8192-8192-8192", the last being the embedding's. UnmarshalText refuses
// text that is not such a list, but takes "", the zero value of a file
// that records no run settings, which Resolve refuses; Config.Resolve
// parses it once into the widths a run is built with (Resolved.Widths).
type Projector string

// Widths parses p.
func (p Projector) Widths() ([]int, error) {
	ws, err := models.ParseSpec(string(p))
	if err != nil {
		return nil, fmt.Errorf("train: projector %q: %w", string(p), err)
	}
	return ws, nil
}

func (p Projector) String() string { return string(p) }

// MarshalText is p's text.
func (p Projector) MarshalText() ([]byte, error) { return []byte(p), nil }

// UnmarshalText takes widths joined by "-", or "".
func (p *Projector) UnmarshalText(text []byte) error {
	v := Projector(text)
	if _, err := v.Widths(); err != nil && v != "" {
		return err
	}
	*p = v
	return nil
}
