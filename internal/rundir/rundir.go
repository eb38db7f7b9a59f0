// Package rundir gives a training run sole use of its directory. A run
// holds a lock on the directory for its whole life, so a second process is
// refused with the holder's name; a directory that already holds another
// run (its settings, metrics or checkpoints) is refused unless the caller
// says to resume or overwrite it. The directory records what the run
// wrote (its manifest), and only that is ever removed: by a run that
// overwrites it, or when the run fails before its first step, which
// leaves nothing behind.
package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Mode is what may happen to a directory that already holds a run.
type Mode int

const (
	New       Mode = iota // refuse it
	Resume                // continue it: its files stay
	Overwrite             // replace it: its run files are removed at Start
)

// LockName is the lock file inside a run directory; it names the holder.
const LockName = ".bt.lock"

// ErrBusy is wrapped by Open's error when the directory holds another run
// or another process holds it.
var ErrBusy = errors.New("run directory in use")

// ManifestName is the file in a run directory that lists, one a line,
// the files the run wrote besides its checkpoints.
const ManifestName = ".bt-files"

// marks are the patterns of files that show a directory holds a run.
var marks = []string{"config.json", "metrics.jsonl", "checkpoint*.safetensors"}

// legacy are the files every run wrote before runs kept a manifest: what
// an overwrite removes of a run without one.
var legacy = []string{"config.json", "run.json", "metrics.jsonl", "loss.png", "lr.png", "knn.png", "c_start.png", "c_end.png"}

// checkpointFile matches the checkpoints a run writes and, with the
// rest, the temporary files of a write that was killed.
var checkpointFile = regexp.MustCompile(`^checkpoint(-[0-9]+)?\.safetensors(\.tmp[0-9]+|\.link)?$`)

// Dir is a run directory claimed by this process.
type Dir struct {
	Path    string
	mode    Mode
	lock    *fileLock
	created bool // the directory did not exist before Open
	ownLock bool // nor did its lock file
	started bool
	kept    bool
	wrote   []string // recorded in the manifest
}

// Open claims path for a run in the given mode, creating it if needed.
func Open(path string, mode Mode) (*Dir, error) {
	created := false
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		if err := os.MkdirAll(path, 0o755); err != nil {
			return nil, err
		}
		created = true
	} else if err != nil {
		return nil, err
	}
	d := &Dir{Path: path, mode: mode, created: created, lock: newLock(filepath.Join(path, LockName))}
	_, err := os.Stat(d.lock.Path())
	d.ownLock = errors.Is(err, os.ErrNotExist)
	ok, err := d.lock.TryLock()
	if err != nil {
		d.cleanup()
		return nil, fmt.Errorf("locking %s: %w", path, err)
	}
	if !ok {
		holder, _ := os.ReadFile(d.lock.Path())
		return nil, fmt.Errorf("%s is in use by another bt process (%s) (%w)", path, strings.TrimSpace(string(holder)), ErrBusy)
	}
	if mode == New {
		if run := d.holds(); run != "" {
			d.Close()
			return nil, fmt.Errorf("%s holds another run (%s); resume it, overwrite it, or choose another directory (%w)", path, run, ErrBusy)
		}
	}
	host, _ := os.Hostname()
	holder := fmt.Sprintf("pid %d on %s since %s: %s", os.Getpid(), host, time.Now().Format(time.RFC3339), strings.Join(os.Args, " "))
	if err := os.WriteFile(d.lock.Path(), []byte(holder+"\n"), 0o644); err != nil {
		d.Close()
		return nil, err
	}
	return d, nil
}

// OpenNext claims base, or the first of base-2, base-3, … that neither
// holds a run nor is locked: the default directory for runs whose user
// named none, so two such runs never meet.
func OpenNext(base string) (*Dir, error) {
	for i := 1; ; i++ {
		path := base
		if i > 1 {
			path = base + "-" + strconv.Itoa(i)
		}
		d, err := Open(path, New)
		if !errors.Is(err, ErrBusy) {
			return d, err
		}
	}
}

// holds names the files that show the directory holds a run, or "".
func (d *Dir) holds() string {
	var found []string
	for _, pat := range marks {
		m, _ := filepath.Glob(filepath.Join(d.Path, pat))
		for _, f := range m {
			found = append(found, filepath.Base(f))
		}
	}
	return strings.Join(found, ", ")
}

// Start marks the run as under way: in Overwrite mode the previous run's
// files (those its manifest lists, its checkpoints) are removed now, and
// nothing else; in Resume mode the temporary files of a write that was
// killed are. Call it once everything that can fail before the first
// step has been checked and built.
func (d *Dir) Start() error {
	switch d.mode {
	case Overwrite:
		old, err := d.manifest()
		if errors.Is(err, os.ErrNotExist) {
			old, err = legacy, nil
		}
		if err != nil {
			return err
		}
		if err := d.remove(func(name string) bool { return slices.Contains(old, name) || checkpointFile.MatchString(name) }); err != nil {
			return err
		}
		if err := os.Remove(filepath.Join(d.Path, ManifestName)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	case Resume:
		old, err := d.manifest()
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		d.wrote = old
		if err := d.remove(func(name string) bool {
			return checkpointFile.MatchString(name) && (strings.HasSuffix(name, ".link") || strings.Contains(name, ".tmp"))
		}); err != nil {
			return err
		}
	}
	d.started = true
	return nil
}

// remove deletes the directory's files whose names match.
func (d *Dir) remove(match func(string) bool) error {
	es, err := os.ReadDir(d.Path)
	if err != nil {
		return err
	}
	for _, e := range es {
		if !e.IsDir() && match(e.Name()) {
			if err := os.Remove(filepath.Join(d.Path, e.Name())); err != nil {
				return err
			}
		}
	}
	return nil
}

// manifest reads the names the directory's manifest lists.
func (d *Dir) manifest() ([]string, error) {
	b, err := os.ReadFile(filepath.Join(d.Path, ManifestName))
	if err != nil {
		return nil, err
	}
	return strings.Fields(string(b)), nil
}

// Record adds files the run writes (names inside the directory) to its
// manifest, before they are written; checkpoints need no record.
func (d *Dir) Record(names ...string) error {
	for _, n := range names {
		if strings.ContainsAny(n, "/\\ \n") {
			return fmt.Errorf("rundir: %q is not a plain file name", n)
		}
		if !slices.Contains(d.wrote, n) {
			d.wrote = append(d.wrote, n)
		}
	}
	return os.WriteFile(filepath.Join(d.Path, ManifestName), []byte(strings.Join(d.wrote, "\n")+"\n"), 0o644)
}

// Keep marks the run as having done a step: from now on Close keeps what
// it wrote.
func (d *Dir) Keep() { d.kept = true }

// Close releases the directory. Before Keep it also removes what the run
// made: a new or overwriting run's recorded files and checkpoints, and the
// directory if Open created it, else the lock file.
func (d *Dir) Close() error {
	err := d.lock.Unlock()
	d.cleanup()
	return err
}

func (d *Dir) cleanup() {
	if d.kept {
		return
	}
	if d.created {
		os.RemoveAll(d.Path)
		return
	}
	if d.started && d.mode != Resume {
		d.remove(func(name string) bool { return slices.Contains(d.wrote, name) || checkpointFile.MatchString(name) })
		os.Remove(filepath.Join(d.Path, ManifestName))
	}
	if d.ownLock {
		os.Remove(d.lock.Path())
	}
}
