// Package dist runs one training step over several processes, each with its
// own adapter, as data parallelism over MPI: a Comm moves float32 vectors
// between the ranks, and the trainer uses it at the few points where one
// process's step must see the whole global batch (synchronised BatchNorm,
// the loss's embeddings, the parameters' gradients).
//
// MPI comes in with a build tag: `go build -tags mpi` (Open MPI) or
// `-tags mpich` (scripts/build-mpi.sh). Without it Open returns a
// one-process Comm, and refuses to start as one of several processes, so
// that a binary without MPI never trains N copies of the same run side by
// side.
package dist

import (
	"errors"
	"fmt"
	"os"
	"strconv"
)

// Comm is a group of processes, each a rank in [0, Size). Every method but
// Rank and Size is a collective: every rank calls it, in the same order
// with vectors of the same length, or the group waits for the one that did
// not.
type Comm interface {
	Rank() int
	Size() int
	// AllReduce replaces v on every rank by the element-wise sum of every
	// rank's v.
	AllReduce(v []float32) error
	// StartAllReduce is AllReduce that may run while the caller goes on:
	// it takes its place among the collectives at the call, and v holds
	// the sums once wait has returned; v must not be touched before.
	StartAllReduce(v []float32) (wait func() error)
	// AllGather writes every rank's src, in rank order, into dst, which
	// holds Size·len(src) values.
	AllGather(dst, src []float32) error
	// Broadcast copies root's v into every rank's v.
	Broadcast(v []byte, root int) error
	// Close leaves the group (MPI_Finalize).
	Close() error
}

// Single is the group of one process: every collective leaves its input
// as it is.
type Single struct{}

func (Single) Rank() int                   { return 0 }
func (Single) Size() int                   { return 1 }
func (Single) AllReduce([]float32) error   { return nil }
func (Single) Broadcast([]byte, int) error { return nil }
func (Single) Close() error                { return nil }
func (Single) StartAllReduce([]float32) func() error {
	return func() error { return nil }
}
func (Single) AllGather(dst, src []float32) error {
	if len(dst) != len(src) {
		return fmt.Errorf("dist: all-gather of %d values into %d", len(src), len(dst))
	}
	copy(dst, src)
	return nil
}

// Launched is the number of processes a launcher (mpirun, mpiexec, srun)
// started this one among, read from the environment it sets; 1 when none
// did.
func Launched() int {
	for _, k := range []string{"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_STEP_NUM_TASKS"} {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n > 0 {
			return n
		}
	}
	return 1
}

// LocalRank is this process's rank among those on its machine, from the
// launcher's environment (0 when none says): each rank picks the adapter of
// that index, so the ranks on one machine use different GPUs.
func LocalRank() int {
	for _, k := range []string{"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "PMI_LOCAL_RANK", "SLURM_LOCALID"} {
		if n, err := strconv.Atoi(os.Getenv(k)); err == nil && n >= 0 {
			return n
		}
	}
	return 0
}

// maxMessage bounds the error text Agree sends from the failing rank.
const maxMessage = 2048

// RankError is an error every rank agreed on (see Agree): that of rank
// Rank. On that rank Err is its own error; on the others, its text.
type RankError struct {
	Rank int
	Err  error
}

func (e *RankError) Error() string { return fmt.Sprintf("rank %d: %v", e.Rank, e.Err) }
func (e *RankError) Unwrap() error { return e.Err }

// Agree is a collective that makes one rank's error every rank's: each
// passes its own (nil when it is fine) and every rank returns nil when all
// were, or else the same *RankError, that of the lowest failing rank. The
// failing rank's own error stays wrapped in what it returns.
func Agree(c Comm, err error) error {
	if c.Size() == 1 {
		return err
	}
	flags := make([]float32, c.Size())
	if err != nil {
		flags[c.Rank()] = 1
	}
	if e := c.AllReduce(flags); e != nil {
		return e
	}
	from := -1
	for r, f := range flags {
		if f != 0 {
			from = r
			break
		}
	}
	if from < 0 {
		return nil
	}
	msg := make([]byte, maxMessage)
	if c.Rank() == from {
		copy(msg, err.Error())
	}
	if e := c.Broadcast(msg, from); e != nil {
		return e
	}
	if c.Rank() == from {
		return &RankError{Rank: from, Err: err}
	}
	n := 0
	for n < len(msg) && msg[n] != 0 {
		n++
	}
	return &RankError{Rank: from, Err: errors.New(string(msg[:n]))}
}

// Any is a collective that reports to every rank whether any rank's v was
// true: the ranks stop together when one is asked to (Ctrl-C reaches the
// ranks at different steps).
func Any(c Comm, v bool) (bool, error) {
	if c.Size() == 1 {
		return v, nil
	}
	flag := []float32{0}
	if v {
		flag[0] = 1
	}
	if err := c.AllReduce(flag); err != nil {
		return false, err
	}
	return flag[0] != 0, nil
}
