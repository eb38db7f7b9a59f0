// Package disttest makes a group of ranks inside one process, for tests of
// what runs over dist.Comm: each rank is a goroutine, and a collective
// waits until every rank has called it. It is not a transport; bt's ranks
// talk over MPI.
package disttest

import (
	"fmt"
	"sync"

	"github.com/bt-org/bt/dist"
)

// Group returns the Comms of n ranks that run collectives with each other.
func Group(n int) []dist.Comm {
	h := &hub{size: n, slots: make([]any, n), ops: make([]string, n)}
	h.cond = sync.NewCond(&h.mu)
	cs := make([]dist.Comm, n)
	for r := range cs {
		cs[r] = &rank{h: h, rank: r}
	}
	return cs
}

// Run calls fn for every rank of a group of n on its own goroutine and
// returns the first error by rank.
func Run(n int, fn func(c dist.Comm) error) error {
	cs := Group(n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[r] = fn(c)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			return fmt.Errorf("rank %d: %w", r, err)
		}
	}
	return nil
}

type hub struct {
	mu      sync.Mutex
	cond    *sync.Cond
	size    int
	arrived int
	gen     int
	slots   []any
	ops     []string
	result  any
	err     error
}

// exchange puts rank's v in and, once every rank has, returns combine of
// them all (combine runs once, on the last rank to arrive). A rank cannot
// start the next exchange before it has its result, and the next result
// needs every rank, so one result field is enough. op names the
// collective and its length: ranks that call different collectives at the
// same point, which over MPI wait for each other for ever, get an error
// naming what each called.
func (h *hub) exchange(rank int, op string, v any, combine func([]any) any) (any, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.slots[rank] = v
	h.ops[rank] = op
	h.arrived++
	gen := h.gen
	if h.arrived == h.size {
		h.err = nil
		for r, o := range h.ops {
			if o != h.ops[0] {
				h.err = fmt.Errorf("disttest: the ranks called different collectives: rank 0 %s, rank %d %s", h.ops[0], r, o)
				break
			}
		}
		if h.err == nil {
			h.result = combine(h.slots)
		}
		h.arrived = 0
		h.gen++
		h.cond.Broadcast()
	}
	for h.gen == gen {
		h.cond.Wait()
	}
	return h.result, h.err
}

type rank struct {
	h    *hub
	rank int
}

func (c *rank) Rank() int    { return c.rank }
func (c *rank) Size() int    { return c.h.size }
func (c *rank) Close() error { return nil }

func (c *rank) AllReduce(v []float32) error {
	sum, err := c.h.exchange(c.rank, fmt.Sprintf("AllReduce of %d", len(v)), append([]float32(nil), v...), func(all []any) any {
		s := make([]float32, len(v))
		for _, x := range all {
			for i, f := range x.([]float32) {
				s[i] += f
			}
		}
		return s
	})
	if err != nil {
		return err
	}
	copy(v, sum.([]float32))
	return nil
}

// StartAllReduce runs at once: a goroutine's exchange could not keep its
// place among the rank's collectives.
func (c *rank) StartAllReduce(v []float32) func() error {
	err := c.AllReduce(v)
	return func() error { return err }
}

func (c *rank) AllGather(dst, src []float32) error {
	if len(dst) != c.h.size*len(src) {
		return fmt.Errorf("disttest: all-gather of %d values from %d ranks into %d", len(src), c.h.size, len(dst))
	}
	all, err := c.h.exchange(c.rank, fmt.Sprintf("AllGather of %d", len(src)), append([]float32(nil), src...), func(all []any) any {
		var s []float32
		for _, x := range all {
			s = append(s, x.([]float32)...)
		}
		return s
	})
	if err != nil {
		return err
	}
	copy(dst, all.([]float32))
	return nil
}

func (c *rank) Broadcast(v []byte, root int) error {
	got, err := c.h.exchange(c.rank, fmt.Sprintf("Broadcast of %d from %d", len(v), root), append([]byte(nil), v...), func(all []any) any { return all[root] })
	if err != nil {
		return err
	}
	copy(v, got.([]byte))
	return nil
}
