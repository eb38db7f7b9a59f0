// Package rundir gives a training run sole use of its directory. A run
// holds a lock on the directory for its whole life, so a second process is
// refused with the holder's name; a directory that already holds another
// run (its settings, metrics or checkpoints) is refused unless the caller
// says to resume or overwrite it; and a run that fails before it starts
// leaves nothing behind.
package rundir

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/gofrs/flock"
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

// runFiles are the patterns of what a run writes; any of the first three
// marks the directory as holding a run.
var runFiles = []string{"config.json", "metrics.jsonl", "checkpoint*.safetensors", "run.json", "*.png", "results.md"}

// Dir is a run directory claimed by this process.
type Dir struct {
	Path    string
	mode    Mode
	lock    *flock.Flock
	created bool // the directory did not exist before Open
	ownLock bool // nor did its lock file
	started bool
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
	d := &Dir{Path: path, mode: mode, created: created, lock: flock.New(filepath.Join(path, LockName))}
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
	for _, pat := range runFiles[:3] {
		m, _ := filepath.Glob(filepath.Join(d.Path, pat))
		for _, f := range m {
			found = append(found, filepath.Base(f))
		}
	}
	return strings.Join(found, ", ")
}

// Start marks the run as under way: in Overwrite mode the previous run's
// files are removed now, and from now on Close keeps what the run wrote.
// Call it once everything that can fail before the first step has been
// checked and built.
func (d *Dir) Start() error {
	if d.mode == Overwrite {
		for _, pat := range runFiles {
			m, _ := filepath.Glob(filepath.Join(d.Path, pat))
			for _, f := range m {
				if err := os.Remove(f); err != nil {
					return err
				}
			}
		}
	}
	d.started = true
	return nil
}

// Close releases the directory. Before Start it also removes what Open
// made: the directory if it created it, else its lock file.
func (d *Dir) Close() error {
	err := d.lock.Unlock()
	d.cleanup()
	return err
}

func (d *Dir) cleanup() {
	if d.started {
		return
	}
	if d.created {
		os.RemoveAll(d.Path)
	} else if d.ownLock {
		os.Remove(d.lock.Path())
	}
}
