package loss

import (
	"fmt"
	"math"
	"strings"
	"testing"

	"github.com/bt-org/bt/dist"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/internal/disttest"
	"github.com/bt-org/bt/internal/gputest"
	"github.com/bt-org/bt/internal/kcheck"
	"github.com/bt-org/bt/internal/ref"
)

// TestSharded: the loss of a global batch spread over 1, 2 and 3 ranks of
// an in-process group (NewSharded, which all-reduces C), against the
// float64 reference over the whole batch, on fresh draws: on every rank
// the loss, the statistics and its own rows of both gradients, written
// over NaN. Ranks of one row, widths of 1 and of no tile's multiple, and
// the redundancy-only ablation are among the cases.
func TestSharded(t *testing.T) {
	devs := gputest.Devices(t, 3)
	rng := gputest.Rand(t)
	for _, ranks := range []int{1, 2, 3} {
		for _, s := range [][2]int{{1, 17}, {3, 1}, {6, 65}, {9, 129}, {22, 3}} { // rows per rank, D
			n, dim := s[0], s[1]
			total := ranks * n
			if total < 2 {
				continue
			}
			for _, p := range lossParams(total) {
				for _, onDiag := range []float64{1, 0} {
					o := ref.BTOptions{OnDiag: onDiag, Lambda: float64(p[0]), Scale: float64(p[1])}
					t.Run(fmt.Sprintf("%dranks/%dx%d/lambda=%g,scale=%g,ondiag=%g", ranks, n, dim, p[0], p[1], onDiag), func(t *testing.T) {
						za, zb := ref.BTViews(rng, total, dim)
						za, zb = kcheck.To64(kcheck.To32(za)), kcheck.To64(kcheck.To32(zb))
						want := ref.BTLossWith(za, zb, total, dim, o)
						dza, dzb := make([]float64, total*dim), make([]float64, total*dim)
						ref.BTLossWithBackward(dza, dzb, za, zb, total, dim, o)
						opt := options(p[0], p[1], false)
						opt.RedundancyOnly = onDiag == 0
						err := disttest.Run(ranks, func(c dist.Comm) error {
							rows := func(v []float64) []float64 { return v[c.Rank()*n*dim : (c.Rank()+1)*n*dim] }
							got, stats, err := runSharded(devs[c.Rank()], c, opt, rows(za), rows(zb), n, dim)
							if err != nil {
								return err
							}
							if !near(float32(got[0][0]), want.Loss, kcheck.Reduction) {
								t.Errorf("rank %d: loss %.7g, want %.7g", c.Rank(), got[0][0], want.Loss)
							}
							for i, w := range [][]float64{rows(dza), rows(dzb)} {
								if err := ref.Compare(got[1+i], w, kcheck.Reduction); err != nil {
									t.Errorf("rank %d: dL/dz of view %c: %v", c.Rank(), 'A'+i, err)
								}
							}
							checkStats(t, stats, want)
							return nil
						})
						if err != nil {
							t.Fatal(err)
						}
					})
				}
			}
		}
	}
}

// runSharded runs a sharded loss's forward and backward on one rank's rows
// za and zb [n, dim], its outputs filled with NaN first, and returns the
// loss, both gradients and the statistics.
func runSharded(d *gpu.Device, c dist.Comm, o Options, za, zb []float64, n, dim int) ([3][]float64, Stats, error) {
	l, err := NewSharded(d, c, n, dim, o)
	if err != nil {
		return [3][]float64{}, Stats{}, err
	}
	defer l.Release()
	nan := func(k int) []float64 {
		v := make([]float64, k)
		for i := range v {
			v[i] = math.NaN()
		}
		return v
	}
	return runLossInto(d, l, za, zb, nan(1), nan(n*dim), nan(n*dim), n, dim)
}

// TestShardedErrors: what NewSharded cannot take is refused by name.
func TestShardedErrors(t *testing.T) {
	d := gputest.Device(t)
	two := disttest.Group(2)[0]
	feature := DefaultOptions()
	feature.Norm = FeatureNorm
	fused := DefaultOptions()
	fused.Path = Fused
	for _, tc := range []struct {
		name string
		c    dist.Comm
		n    int
		o    Options
		want string
	}{
		{"no comm", nil, 4, DefaultOptions(), "dist.Comm"},
		{"feature norm", two, 4, feature, "batch normalisation only"},
		{"fused", two, 4, fused, "materialised path"},
		{"one row", dist.Single{}, 1, DefaultOptions(), "at least 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := NewSharded(d, tc.c, tc.n, 8, tc.o)
			if err == nil {
				l.Release()
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
		})
	}
}
