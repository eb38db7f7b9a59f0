package dist_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/internal/disttest"
)

func TestAgree(t *testing.T) {
	for _, tc := range []struct {
		name    string
		failing []int // ranks that fail
		want    string
	}{
		{"none", nil, ""},
		{"one", []int{2}, "rank 2: broken on 2"},
		{"lowest of two", []int{3, 1}, "rank 1: broken on 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make([]string, 4)
			err := disttest.Run(4, func(c dist.Comm) error {
				var mine error
				for _, f := range tc.failing {
					if f == c.Rank() {
						mine = errors.New("broken on " + string(rune('0'+f)))
					}
				}
				if e := dist.Agree(c, mine); e != nil {
					got[c.Rank()] = e.Error()
					var re *dist.RankError
					if !errors.As(e, &re) || re.Rank != slices.Min(tc.failing) {
						t.Errorf("rank %d: %v is not a RankError naming rank %d", c.Rank(), e, slices.Min(tc.failing))
					}
					if mine != nil && strings.HasPrefix(tc.want, "rank "+string(rune('0'+c.Rank()))) && !errors.Is(e, mine) {
						t.Errorf("rank %d: its own error is not wrapped: %v", c.Rank(), e)
					}
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			for r, g := range got {
				if g != tc.want {
					t.Errorf("rank %d got %q, want %q", r, g, tc.want)
				}
			}
		})
	}
}

func TestAny(t *testing.T) {
	err := disttest.Run(3, func(c dist.Comm) error {
		for _, asker := range []int{-1, 0, 2} {
			got, err := dist.Any(c, c.Rank() == asker)
			if err != nil {
				return err
			}
			if got != (asker >= 0) {
				t.Errorf("rank %d, asked by %d: got %v", c.Rank(), asker, got)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestSingle(t *testing.T) {
	var c dist.Comm = dist.Single{}
	v := []float32{1, 2}
	if err := c.AllReduce(v); err != nil || v[0] != 1 || v[1] != 2 {
		t.Errorf("all-reduce over one rank changed %v (%v)", v, err)
	}
	dst := make([]float32, 2)
	if err := c.AllGather(dst, v); err != nil || dst[1] != 2 {
		t.Errorf("all-gather over one rank: %v (%v)", dst, err)
	}
	if err := c.AllGather(make([]float32, 3), v); err == nil {
		t.Error("all-gather into a wrong length: no error")
	}
	if err := dist.Agree(c, errors.New("x")); err == nil || !strings.Contains(err.Error(), "x") {
		t.Errorf("Agree over one rank lost the error: %v", err)
	}
}

func TestOpenRefusesSeveralWithoutMPI(t *testing.T) {
	if dist.MPI != "" {
		t.Skip("built with MPI: " + dist.MPI)
	}
	t.Setenv("OMPI_COMM_WORLD_SIZE", "2")
	if _, err := dist.Open(); err == nil || !strings.Contains(err.Error(), "build-mpi") {
		t.Errorf("a binary without MPI started as one of 2: %v", err)
	}
}
