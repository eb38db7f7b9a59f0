package tune

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/bt-org/bt/gpu"
)

// Format is the cache file's format version; a file of another is ignored.
// 2: tiles with variants (Double, Pad, Vec4, SplitK); 3: the variants of
// the families other than GEMM.
const Format = 3

// Key says which adapter, driver and build a tuning was measured with: a
// choice holds for the same key only.
type Key struct {
	Adapter string `json:"adapter"`
	Vendor  string `json:"vendor"`
	Driver  string `json:"driver"`
	Backend string `json:"backend"`
	Version string `json:"version"` // bt's version: its kernels change between builds
}

// KeyOf is the key of a device for a build of bt.
func KeyOf(d *gpu.Device, version string) Key {
	return Key{Adapter: d.Info.Name, Vendor: d.Info.Vendor, Driver: d.Info.Driver, Backend: d.Info.Backend, Version: version}
}

// entry is one adapter's choices in the file.
type entry struct {
	Key     Key                                   `json:"key"`
	Gemm    map[gpu.GemmClass]gpu.GemmTile        `json:"gemm"`
	Kernels map[gpu.KernelClass]gpu.KernelVariant `json:"kernels"`
}

// file is the cache file: a format version and an entry per key.
type file struct {
	Format  int     `json:"format"`
	Entries []entry `json:"entries"`
}

// DefaultPath is the cache file in the user's cache directory
// ($XDG_CACHE_HOME/bt/tune.json on Linux, %LocalAppData%\bt\tune.json on
// Windows, ~/Library/Caches/bt/tune.json on macOS).
func DefaultPath() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("tune: no cache directory for the tuning file: %w", err)
	}
	return filepath.Join(dir, "bt", "tune.json"), nil
}

// ErrNoEntry is Load's error when the file has no choices for the key: a
// file that does not exist, or one whose entries are for other adapters,
// drivers or builds.
var ErrNoEntry = errors.New("no tuning for this adapter, driver and build")

// Load reads the choices for key from the file at path. A file that does
// not parse, has another format version, or holds a class or tile that is
// not valid is an error naming the file; so is one without an entry for
// the key (ErrNoEntry). A caller ignores the file on any error.
func Load(path string, key Key) (gpu.Tuning, error) {
	f, err := read(path)
	if err != nil {
		return gpu.Tuning{}, err
	}
	for _, e := range f.Entries {
		if e.Key == key {
			return gpu.Tuning{Gemm: e.Gemm, Kernels: e.Kernels}, nil
		}
	}
	return gpu.Tuning{}, fmt.Errorf("tune: %s: %w (%s, %s)", path, ErrNoEntry, key.Adapter, key.Version)
}

func read(path string) (file, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return file{}, fmt.Errorf("tune: %s: %w", path, ErrNoEntry)
	}
	if err != nil {
		return file{}, fmt.Errorf("tune: reading %s: %w", path, err)
	}
	var f file
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return file{}, fmt.Errorf("tune: %s is damaged: %w", path, err)
	}
	if dec.More() {
		return file{}, fmt.Errorf("tune: %s is damaged: data after its JSON object", path)
	}
	if f.Format != Format {
		return file{}, fmt.Errorf("tune: %s has format %d, this build reads %d", path, f.Format, Format)
	}
	return f, nil
}

// Save stores the choices for key in the file at path, keeping the entries
// of other keys that a readable file holds and replacing the one of key.
// It writes a temporary file beside it and renames it into place, so a
// reader sees the old file or the new one.
func Save(path string, key Key, t gpu.Tuning) error {
	f, err := read(path)
	if err != nil {
		f = file{}
	}
	f.Format = Format
	kept := f.Entries[:0]
	for _, e := range f.Entries {
		if e.Key != key {
			kept = append(kept, e)
		}
	}
	f.Entries = append(kept, entry{Key: key, Gemm: t.Gemm, Kernels: t.Kernels})
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("tune: encoding %s: %w", path, err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tune-*.json")
	if err != nil {
		return fmt.Errorf("tune: %w", err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return fmt.Errorf("tune: writing %s: %w", tmp.Name(), err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("tune: writing %s: %w", tmp.Name(), err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("tune: %w", err)
	}
	return nil
}

// Use gives the device the choices the file at path holds for it and this
// build, and returns them. On an error, which says why the file was not
// used, the device keeps the choices it had.
func Use(d *gpu.Device, path, version string) (gpu.Tuning, error) {
	t, err := Load(path, KeyOf(d, version))
	if err != nil {
		return gpu.Tuning{}, err
	}
	if err := d.SetTuning(t); err != nil {
		return gpu.Tuning{}, fmt.Errorf("tune: %s: %w", path, err)
	}
	return t, nil
}

// Summary says in one line which classes a tuning holds a choice for:
// "33 classes of product; kernels: elementwise 5, batchnorm 4".
func Summary(t gpu.Tuning) string {
	s := fmt.Sprintf("%d classes of product", len(t.Gemm))
	per := map[gpu.Family]int{}
	for c := range t.Kernels {
		per[c.Family]++
	}
	sep := "; kernels: "
	for _, f := range gpu.Families {
		if per[f] > 0 {
			s += fmt.Sprintf("%s%s %d", sep, f, per[f])
			sep = ", "
		}
	}
	return s
}
