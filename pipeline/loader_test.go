package pipeline

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"testing"
)

func smallSynthetic(t testing.TB, n int) *Synthetic {
	d, err := NewSynthetic(SyntheticConfig{Count: n, Size: 20, Channels: 3, Classes: 10, Seed: 3})
	must(t, err)
	return d
}

func smallConfig() Config {
	c, _ := Preset("imagenet") // every augmentation on, blur included
	c.A.Size, c.B.Size = 16, 16
	return c
}

// collect drains a loader into copies of its batches.
func collect(t *testing.T, l *Loader, recycle bool) []Batch {
	t.Helper()
	var out []Batch
	for {
		b, err := l.Next()
		if err == io.EOF {
			return out
		}
		must(t, err)
		c := *b
		c.A, c.B = slices.Clone(b.A), slices.Clone(b.B)
		c.Labels, c.Index = slices.Clone(b.Labels), slices.Clone(b.Index)
		out = append(out, c)
		if recycle {
			l.Recycle(b)
		}
	}
}

func equalBatches(t *testing.T, name string, got, want []Batch) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d batches, want %d", name, len(got), len(want))
	}
	for i := range got {
		g, w := got[i], want[i]
		if g.Epoch != w.Epoch || g.Step != w.Step || g.N != w.N || !slices.Equal(g.Index, w.Index) || !slices.Equal(g.Labels, w.Labels) ||
			!slices.Equal(g.A, w.A) || !slices.Equal(g.B, w.B) {
			t.Fatalf("%s: batch %d (epoch %d step %d) differs", name, i, g.Epoch, g.Step)
		}
	}
}

func TestLoaderDeterministicAcrossWorkers(t *testing.T) {
	ds := smallSynthetic(t, 50)
	run := func(workers, prefetch int, recycle bool) []Batch {
		l, err := NewLoader(ds, smallConfig(), LoaderConfig{BatchSize: 8, Workers: workers, Prefetch: prefetch, Seed: 11, Shuffle: true, DropLast: true, Epochs: 2})
		must(t, err)
		defer l.Close()
		return collect(t, l, recycle)
	}
	ref := run(1, 1, false)
	if len(ref) != 12 {
		t.Fatalf("%d batches, want 2 epochs × 6", len(ref))
	}
	for _, tt := range []struct{ workers, prefetch int }{{2, 1}, {3, 7}, {8, 2}} {
		equalBatches(t, fmt.Sprintf("%d workers, prefetch %d", tt.workers, tt.prefetch), run(tt.workers, tt.prefetch, true), ref)
	}
	// Resuming at epoch 1 reproduces the second epoch.
	l, err := NewLoader(ds, smallConfig(), LoaderConfig{BatchSize: 8, Workers: 2, Seed: 11, Shuffle: true, DropLast: true, Epoch: 1, Epochs: 1})
	must(t, err)
	equalBatches(t, "resumed", collect(t, l, false), ref[6:])
	l.Close()
	// Resuming mid-epoch reproduces the rest of the run.
	l, err = NewLoader(ds, smallConfig(), LoaderConfig{BatchSize: 8, Workers: 2, Seed: 11, Shuffle: true, DropLast: true, Epoch: 0, Step: 4, Epochs: 2})
	must(t, err)
	equalBatches(t, "resumed mid-epoch", collect(t, l, false), ref[4:])
	l.Close()
	if _, err := NewLoader(ds, smallConfig(), LoaderConfig{BatchSize: 8, Seed: 11, DropLast: true, Step: 6}); err == nil {
		t.Error("a Step past the end of the epoch was accepted")
	}
	// Another seed changes everything.
	l, _ = NewLoader(ds, smallConfig(), LoaderConfig{BatchSize: 8, Workers: 2, Seed: 12, Shuffle: true, DropLast: true, Epochs: 1})
	other := collect(t, l, false)
	l.Close()
	if slices.Equal(other[0].Index, ref[0].Index) || slices.Equal(other[0].A, ref[0].A) {
		t.Error("seed 12 gives seed 11's first batch")
	}
}

func TestLoaderEpochs(t *testing.T) {
	ds := smallSynthetic(t, 21)
	l, err := NewLoader(ds, smallConfig(), LoaderConfig{BatchSize: 4, Workers: 3, Seed: 1, Shuffle: true, Epochs: 3})
	must(t, err)
	defer l.Close()
	if l.StepsPerEpoch() != 6 {
		t.Fatalf("StepsPerEpoch %d, want 6 (21 images, batch 4, keep last)", l.StepsPerEpoch())
	}
	batches := collect(t, l, true)
	if len(batches) != 18 {
		t.Fatalf("%d batches, want 18", len(batches))
	}
	var perms [][]int
	for e := range 3 {
		var seen []int
		for s, b := range batches[e*6 : (e+1)*6] {
			wantN := 4
			if s == 5 {
				wantN = 1
			}
			if b.Epoch != e || b.Step != s || b.N != wantN || len(b.A) != wantN*3*16*16 || len(b.B) != len(b.A) || b.C != 3 || b.H != 16 || b.W != 16 {
				t.Fatalf("epoch %d step %d: got epoch %d step %d N %d len %d", e, s, b.Epoch, b.Step, b.N, len(b.A))
			}
			for k, idx := range b.Index {
				if int(b.Labels[k]) != ds.Label(idx) {
					t.Fatalf("label %d for image %d, want %d", b.Labels[k], idx, ds.Label(idx))
				}
			}
			if slices.Equal(b.A, b.B) {
				t.Fatalf("epoch %d step %d: views A and B are equal", e, s)
			}
			seen = append(seen, b.Index...)
		}
		perms = append(perms, slices.Clone(seen))
		slices.Sort(seen)
		for i, v := range seen {
			if v != i {
				t.Fatalf("epoch %d does not visit every image once: %v", e, seen)
			}
		}
	}
	if slices.Equal(perms[0], perms[1]) {
		t.Error("epochs 0 and 1 have the same order")
	}
	if _, err := l.Next(); err != io.EOF {
		t.Errorf("after the last epoch: %v, want io.EOF", err)
	}
}

func TestEvalLoader(t *testing.T) {
	ds := smallSynthetic(t, 10)
	v := plain(20, 3)
	l, err := NewEvalLoader(ds, v, LoaderConfig{BatchSize: 4, Workers: 2, Epochs: 1})
	must(t, err)
	defer l.Close()
	batches := collect(t, l, false)
	if len(batches) != 3 || batches[2].N != 2 {
		t.Fatalf("%d batches, last of %d; want 3, last of 2", len(batches), batches[len(batches)-1].N)
	}
	var m Image
	for s, b := range batches {
		if b.B != nil {
			t.Fatal("eval batch has a second view")
		}
		for k, idx := range b.Index {
			if idx != s*4+k {
				t.Fatalf("eval order: step %d slot %d holds image %d", s, k, idx)
			}
			// At native size with identity normalisation the eval view is
			// the image itself.
			must(t, ds.Load(idx, &m))
			got := b.A[k*3*400 : (k+1)*3*400]
			for i, want := range m.Pix {
				if d := got[i] - want; d > 1e-6 || d < -1e-6 {
					t.Fatalf("image %d pixel %d = %v, want %v", idx, i, got[i], want)
				}
			}
		}
	}
}

func TestLoaderConfigErrors(t *testing.T) {
	ds := smallSynthetic(t, 5)
	bad := smallConfig()
	bad.B.Size = 8
	for _, tt := range []struct {
		name string
		aug  Config
		cfg  LoaderConfig
	}{
		{"batch 0", smallConfig(), LoaderConfig{}},
		{"no full batch", smallConfig(), LoaderConfig{BatchSize: 6, DropLast: true}},
		{"views differ in size", bad, LoaderConfig{BatchSize: 2}},
		{"negative workers", smallConfig(), LoaderConfig{BatchSize: 2, Workers: -1}},
	} {
		if l, err := NewLoader(ds, tt.aug, tt.cfg); err == nil {
			l.Close()
			t.Errorf("%s: NewLoader succeeded", tt.name)
		}
	}
}

func TestLoaderClose(t *testing.T) {
	l, err := NewLoader(smallSynthetic(t, 40), smallConfig(), LoaderConfig{BatchSize: 4, Workers: 2, Prefetch: 3, Seed: 1})
	must(t, err)
	if _, err := l.Next(); err != nil {
		t.Fatal(err)
	}
	l.Close() // with workers blocked on a full queue
	l.Close()
	if _, err := l.Next(); !errors.Is(err, ErrClosed) {
		t.Errorf("Next after Close: %v, want ErrClosed", err)
	}
}

// flaky fails to load chosen images, like a folder with corrupt files.
type flaky struct {
	Dataset
	bad map[int]bool
}

func (f flaky) Load(i int, dst *Image) error {
	if f.bad[i] {
		return fmt.Errorf("image %d is corrupt", i)
	}
	return f.Dataset.Load(i, dst)
}

func TestLoaderSkipsBadImages(t *testing.T) {
	ds := flaky{smallSynthetic(t, 16), map[int]bool{3: true, 4: true, 9: true}}
	var reported []int // OnSkip runs in Next, on this goroutine
	cfg := LoaderConfig{BatchSize: 4, Workers: 3, Seed: 2, Shuffle: true, Epochs: 2, SkipBad: true, MaxBadFraction: 0.25,
		OnSkip: func(s Skip) { reported = append(reported, s.Index) }}
	l, err := NewLoader(ds, smallConfig(), cfg)
	must(t, err)
	batches := collect(t, l, false)
	l.Close()
	if len(batches) != 8 {
		t.Fatalf("%d batches, want 8", len(batches))
	}
	for _, b := range batches {
		for _, idx := range b.Index {
			if ds.bad[idx] {
				t.Fatalf("bad image %d in a batch", idx)
			}
		}
	}
	skipped := l.Skipped()
	if len(skipped) != 3 || skipped[0].Index != 3 || skipped[1].Index != 4 || skipped[2].Index != 9 || skipped[2].Err == nil {
		t.Errorf("Skipped() = %v, want images 3, 4, 9 with their errors", skipped)
	}
	// Reported once each, in the order the first epoch meets them: a bad
	// image's substitute is the next index, which may be bad too.
	var want []int
	for _, i := range l.Permutation(0) {
		for ; ds.bad[i]; i = (i + 1) % 16 {
			if !slices.Contains(want, i) {
				want = append(want, i)
			}
		}
	}
	if !slices.Equal(reported, want) {
		t.Errorf("OnSkip calls %v, want %v: once per bad image, in the order met", reported, want)
	}
	// The replacements are deterministic too.
	cfg.OnSkip, cfg.Workers = nil, 1
	l, _ = NewLoader(ds, smallConfig(), cfg)
	equalBatches(t, "with skips, 1 worker", collect(t, l, false), batches)
	l.Close()

	// By default the first bad image the epoch visits stops the loader,
	// after the batches before it.
	cfg.SkipBad, cfg.Workers = false, 3
	l, _ = NewLoader(ds, smallConfig(), cfg)
	defer l.Close()
	pos := slices.IndexFunc(l.Permutation(0), func(i int) bool { return ds.bad[i] })
	for range pos / cfg.BatchSize {
		if _, err := l.Next(); err != nil {
			t.Fatalf("a batch before the first bad image: %v", err)
		}
	}
	_, err = l.Next()
	if wantErr := fmt.Sprintf("image %d is corrupt", l.Permutation(0)[pos]); err == nil || err.Error() != wantErr {
		t.Errorf("default loader: %v, want %q", err, wantErr)
	}
	if _, again := l.Next(); again != err {
		t.Errorf("Next after an error: %v, want the same error", again)
	}
	if len(l.Skipped()) != 0 {
		t.Errorf("default loader skipped %v", l.Skipped())
	}

	all := flaky{smallSynthetic(t, 4), map[int]bool{0: true, 1: true, 2: true, 3: true}}
	l2, _ := NewLoader(all, smallConfig(), LoaderConfig{BatchSize: 2, Workers: 1, SkipBad: true, MaxBadFraction: 1})
	defer l2.Close()
	if _, err := l2.Next(); err == nil || !strings.Contains(err.Error(), "4 images in a row from index 0 failed to load; the first: image 0 is corrupt") {
		t.Errorf("a dataset of broken images: %v, want the search for a substitute to give up", err)
	}
}

func TestLoaderMaxBadFraction(t *testing.T) {
	big, small := smallSynthetic(t, 2000), smallSynthetic(t, 100)
	// every'th image bad, count of them, from index 0
	badSet := func(every, count int) map[int]bool {
		bad := map[int]bool{}
		for i := range count {
			bad[i*every] = true
		}
		return bad
	}
	tests := []struct {
		ds     flaky
		frac   float64
		images int    // returned before the error or the end
		want   string // error, or "" for the whole epoch
	}{
		// 1 in 10 bad among the first 100 images of 2000, then none: the
		// fraction is of at least BadFractionFloor images, so the early
		// ones do not stop the run unless they exceed it of those.
		{flaky{big, badSet(10, 10)}, 0, 2000, ""}, // the default 0.01 allows 10 of the first 1000
		{flaky{big, badSet(10, 10)}, 0.005, 50, "6 of the 60 images tried so far failed to load, more than MaxBadFraction 0.005 of 1000 images allows (5); the first: image 0 is corrupt"},
		{flaky{big, badSet(10, 10)}, 1, 2000, ""},
		// A dataset smaller than the floor is judged against its size;
		// 0.29 × 100 allows 29, not 28.999….
		{flaky{small, badSet(3, 29)}, 0.29, 100, ""},
		{flaky{small, badSet(3, 30)}, 0.29, 80, "30 of the 90 images tried so far failed to load, more than MaxBadFraction 0.29 of 100 images allows (29); the first: image 0 is corrupt"},
	}
	for _, tt := range tests {
		l, err := NewLoader(tt.ds, smallConfig(), LoaderConfig{BatchSize: 10, Workers: 2, Epochs: 1, SkipBad: true, MaxBadFraction: tt.frac})
		must(t, err)
		n := 0
		for err == nil {
			var b *Batch
			if b, err = l.Next(); err == nil {
				n += b.N
			}
		}
		l.Close()
		switch {
		case n != tt.images:
			t.Errorf("MaxBadFraction %g, %d of %d bad: %d images before %v, want %d", tt.frac, len(tt.ds.bad), tt.ds.Len(), n, err, tt.images)
		case tt.want == "" && (err != io.EOF || len(l.Skipped()) != len(tt.ds.bad)):
			t.Errorf("MaxBadFraction %g, %d of %d bad: %v with %d skipped; want the epoch with all skipped", tt.frac, len(tt.ds.bad), tt.ds.Len(), err, len(l.Skipped()))
		case tt.want != "" && (err == nil || !strings.HasSuffix(err.Error(), tt.want)):
			t.Errorf("MaxBadFraction %g, %d of %d bad: %v, want %q", tt.frac, len(tt.ds.bad), tt.ds.Len(), err, tt.want)
		}
	}
	for _, frac := range []float64{-0.1, 1.5, math.NaN()} {
		if l, err := NewLoader(small, smallConfig(), LoaderConfig{BatchSize: 10, SkipBad: true, MaxBadFraction: frac}); err == nil {
			l.Close()
			t.Errorf("MaxBadFraction %g accepted", frac)
		}
	}
}

// TestLoaderShards: the parts that 2 and 3 ranks' loaders hand out are
// disjoint, together the whole batch, in order, with the same views as one
// loader makes (independent of the rank count), through a resume too.
func TestLoaderShards(t *testing.T) {
	ds := smallSynthetic(t, 50)
	cfg := LoaderConfig{BatchSize: 12, Workers: 2, Seed: 5, Shuffle: true, DropLast: true, Epochs: 2}
	l, err := NewLoader(ds, smallConfig(), cfg)
	must(t, err)
	whole := collect(t, l, false)
	l.Close()
	for _, ranks := range []int{2, 3} {
		for _, start := range []int{0, 3} {
			parts := make([][]Batch, ranks)
			for r := range parts {
				c := cfg
				c.Rank, c.Ranks, c.Step, c.Epochs = r, ranks, start, 2
				l, err := NewLoader(ds, smallConfig(), c)
				must(t, err)
				parts[r] = collect(t, l, true)
				l.Close()
			}
			for k, want := range whole[start:] {
				var got Batch
				seen := map[int]bool{}
				for r := range parts {
					p := parts[r][k]
					if len(p.Index) != cfg.BatchSize/ranks {
						t.Fatalf("%d ranks, batch %d: rank %d has %d samples, want %d", ranks, k, r, len(p.Index), cfg.BatchSize/ranks)
					}
					for _, i := range p.Index {
						if seen[i] {
							t.Fatalf("%d ranks, batch %d: image %d on two ranks", ranks, k, i)
						}
						seen[i] = true
					}
					got.Index = append(got.Index, p.Index...)
					got.A = append(got.A, p.A...)
					got.B = append(got.B, p.B...)
				}
				if !slices.Equal(got.Index, want.Index) || !slices.Equal(got.A, want.A) || !slices.Equal(got.B, want.B) {
					t.Fatalf("%d ranks from step %d, batch %d: the parts are not the one loader's batch", ranks, start, k)
				}
			}
		}
	}
	for _, bad := range []LoaderConfig{
		{BatchSize: 12, Ranks: 5, DropLast: true}, {BatchSize: 12, Ranks: 2, Rank: 2, DropLast: true}, {BatchSize: 12, Ranks: 2},
	} {
		if _, err := NewLoader(ds, smallConfig(), bad); err == nil {
			t.Errorf("rank %d of %d, batch %d, drop last %v: accepted", bad.Rank, bad.Ranks, bad.BatchSize, bad.DropLast)
		}
	}
}
