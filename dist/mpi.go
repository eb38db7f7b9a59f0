//go:build mpi || mpich

package dist

import (
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"

	"cogentcore.org/lab/base/mpi"
)

// World is the group of every process mpirun (or srun) started. MPI is
// initialised with single-thread support, so every call runs on one
// goroutine locked to its OS thread: the goroutines that call World's
// methods hand their calls over to it.
type World struct {
	calls      chan func()
	comm       *mpi.Comm
	rank, size int
}

// opened makes Open once per process: MPI cannot start again once
// finalised.
var opened atomic.Bool

// Open initialises MPI and returns the group of every process the
// launcher started (one, when the binary runs on its own). A process opens
// it once, and Closes it before it exits: mpirun counts a process that
// exits without finalising MPI as failed.
func Open() (Comm, error) {
	if opened.Swap(true) {
		return nil, errors.New("dist: MPI was already initialised in this process; open it once")
	}
	w := &World{calls: make(chan func())}
	ready := make(chan error)
	go w.serve(ready)
	if err := <-ready; err != nil {
		return nil, err
	}
	return w, nil
}

func (w *World) serve(ready chan<- error) {
	runtime.LockOSThread()
	mpi.LogErrors = false
	mpi.Init()
	if !mpi.IsOn() {
		ready <- errors.New("dist: MPI_Init failed")
		return
	}
	comm, err := mpi.NewComm(nil)
	if err != nil {
		ready <- fmt.Errorf("dist: %w", err)
		return
	}
	w.comm, w.rank, w.size = comm, comm.Rank(), comm.Size()
	ready <- nil
	for f := range w.calls {
		f()
	}
}

// do runs f on the MPI thread and waits for it.
func (w *World) do(f func() error) error {
	done := make(chan error, 1)
	w.calls <- func() { done <- f() }
	return <-done
}

func (w *World) Rank() int { return w.rank }
func (w *World) Size() int { return w.size }

func (w *World) AllReduce(v []float32) error {
	if len(v) == 0 || w.size == 1 {
		return nil
	}
	// nil as the source is MPI_IN_PLACE.
	return w.do(func() error { return w.comm.AllReduceF32(mpi.OpSum, v, nil) })
}

// StartAllReduce hands the all-reduce to the MPI thread before it returns,
// so the collectives called after it run after it, on every rank alike.
func (w *World) StartAllReduce(v []float32) func() error {
	done := make(chan error, 1)
	if len(v) == 0 || w.size == 1 {
		done <- nil
	} else {
		w.calls <- func() { done <- w.comm.AllReduceF32(mpi.OpSum, v, nil) }
	}
	return func() error { return <-done }
}

func (w *World) AllGather(dst, src []float32) error {
	if len(dst) != w.size*len(src) {
		return fmt.Errorf("dist: all-gather of %d values from %d ranks into %d", len(src), w.size, len(dst))
	}
	if len(src) == 0 {
		return nil
	}
	return w.do(func() error { return w.comm.AllGatherF32(dst, src) })
}

func (w *World) Broadcast(v []byte, root int) error {
	if len(v) == 0 || w.size == 1 {
		return nil
	}
	return w.do(func() error { return w.comm.BcastU8(root, v) })
}

// Close finalises MPI; the group cannot be used afterwards.
func (w *World) Close() error {
	err := w.do(func() error { mpi.Finalize(); return nil })
	close(w.calls)
	return err
}
