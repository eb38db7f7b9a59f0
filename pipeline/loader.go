package pipeline

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"runtime"
	"slices"
	"sync"
)

// Batch is one step's input: two augmented views of the same N images.
type Batch struct {
	A, B       []float32 // [N, C, H, W] each, normalised; B is nil from an eval loader
	Labels     []int32   // [N], -1 for unlabeled data
	Index      []int     // [N] dataset indices, for debugging and determinism tests
	N, C, H, W int
	Epoch      int // epoch the batch belongs to
	Step       int // position of the batch within its epoch

	// Images and Params are what a loader with LoaderConfig.Raw hands out
	// instead of A and B (which it leaves nil): the N decoded sources with
	// the dataset's channel count (decoded at a reduced scale where the
	// crops allow), and Params[v][k], view v's draw for sample k with its
	// crop in Images[k]'s pixels. Augmenting them gives A and B; package
	// augment does so on a device.
	Images []Image8
	Params [][]Params
}

// LoaderConfig controls batching, ordering and error handling.
type LoaderConfig struct {
	BatchSize int
	Workers   int    // goroutines producing batches; 0 means runtime.NumCPU()
	Prefetch  int    // batches produced ahead of Next; 0 means 2 × Workers
	Seed      uint64 // with the epoch, determines every batch exactly
	Shuffle   bool   // a new permutation each epoch, else dataset order
	DropLast  bool   // drop the incomplete last batch of an epoch
	Epoch     int    // first epoch, for resuming
	Step      int    // first batch within the first epoch, for resuming mid-epoch
	Epochs    int    // Next returns io.EOF at the end of epoch Epoch+Epochs−1; 0 means never
	// SkipBad makes the loader go on past images that fail to load (for a
	// folder: an empty file, one that is not an image, a truncated or
	// corrupt one, one above the pixel limit). Each is reported once
	// (OnSkip, Skipped) and the next loadable image in dataset order takes
	// its place, so batches keep their size and stay a function of the
	// seed. Without SkipBad the first image that fails stops the loader:
	// Next returns that image's error.
	SkipBad bool
	// MaxBadFraction, with SkipBad, stops the loader once more than this
	// fraction of the distinct images tried in the batches returned so far
	// failed to load: that many is a wrong or damaged copy of the data, not
	// a few broken downloads. The fraction is taken of at least
	// min(Len, BadFractionFloor) images, so a bad file or two among the
	// first images tried does not stop a large dataset, while a small one
	// is judged against its size. 0 means DefaultMaxBadFraction; 1 never
	// stops.
	MaxBadFraction float64
	// OnSkip, with SkipBad, is called once per bad image by Next, in the
	// order of the batches it returns, so the reports too do not depend on
	// the number of workers; may be nil.
	OnSkip func(Skip)
	// Raw makes batches carry decoded 8-bit images and the views' random
	// draws (Batch.Images, Batch.Params) instead of augmented pixels, for
	// augmentation elsewhere. The draws are those the augmenting loader
	// makes with the same seed.
	Raw bool
	// Ranks, when above 1, makes this loader one of Ranks that share every
	// batch of BatchSize (the global batch of data-parallel training): this
	// one hands out the Rank-th of its equal, contiguous parts. Each
	// sample's views depend only on the seed, the epoch and the image, so
	// the ranks' parts together are the batch one loader would make.
	// BatchSize must divide by Ranks, and the last incomplete batch is
	// dropped (DropLast).
	Rank, Ranks int
}

// DefaultMaxBadFraction tolerates one bad image in a hundred.
const DefaultMaxBadFraction = 0.01

// BadFractionFloor is the fewest images MaxBadFraction is taken of (or
// the whole dataset, if smaller): at the default fraction, ten bad images
// among the first thousand tried.
const BadFractionFloor = 1000

// Skip records an image that failed to load and was replaced.
type Skip struct {
	Index int   // in the dataset given to the loader
	Err   error // the dataset's error; a Folder's names the file
}

// maxSubstitutes bounds the search for a loadable replacement, so a dataset
// of nothing but broken files fails instead of spinning.
const maxSubstitutes = 64

// ErrClosed is returned by Next after Close.
var ErrClosed = errors.New("pipeline: loader closed")

// Loader produces batches ahead of time on worker goroutines. Batch k
// depends only on the dataset, the configurations, the seed and k: every
// sample draws from its own generator seeded with (seed, epoch, index), and
// batches are handed out in order whatever worker finished first. Next and
// Close belong to one consumer goroutine.
type Loader struct {
	ds      Dataset
	views   []ViewConfig
	cfg     LoaderConfig
	steps   int
	total   int // batches before io.EOF; -1 for never
	jobs    chan job
	results chan result
	tokens  chan struct{} // one per batch dispatched and not yet returned by Next
	free    chan *Batch
	done    chan struct{}
	// running counts the goroutines Close waits for: the dispatcher and
	// every worker not inside a dataset read (see Close); closed is set
	// by Close. Both under runMu, idle signals a change.
	runMu   sync.Mutex
	idle    *sync.Cond
	running int
	closed  bool

	next    int
	pending map[int]result
	err     error

	// Bad-image accounting, done by Next in batch order so that it, and the
	// batch at which too many bad images stop the loader, do not depend on
	// which worker finished first. The mutex lets Skipped be called from
	// another goroutine.
	skipMu   sync.Mutex
	skipped  map[int]Skip
	firstBad Skip     // the first reported, for the error that stops the loader
	tried    []uint64 // bit i: image i was tried in a returned batch
	nTried   int
}

type job struct {
	seq, epoch, step int
	idx              []int
}

type result struct {
	seq int
	b   *Batch
	bad []Skip // images that failed and were replaced, with SkipBad
	err error
}

// NewLoader returns a two-view loader for Barlow Twins pretraining.
func NewLoader(ds Dataset, aug Config, cfg LoaderConfig) (*Loader, error) {
	if aug.A.Channels() != aug.B.Channels() || aug.A.Size != aug.B.Size {
		return nil, fmt.Errorf("pipeline: views A and B differ in shape (%d×%d² and %d×%d²)", aug.A.Channels(), aug.A.Size, aug.B.Channels(), aug.B.Size)
	}
	return newLoader(ds, []ViewConfig{aug.A, aug.B}, cfg)
}

// NewEvalLoader returns a single-view loader, for feature extraction and the
// linear probe; its batches have B == nil.
func NewEvalLoader(ds Dataset, view ViewConfig, cfg LoaderConfig) (*Loader, error) {
	return newLoader(ds, []ViewConfig{view}, cfg)
}

func newLoader(ds Dataset, views []ViewConfig, cfg LoaderConfig) (*Loader, error) {
	for i := range views {
		if err := views[i].Validate(); err != nil {
			return nil, err
		}
	}
	n := ds.Len()
	switch {
	case n == 0:
		return nil, errors.New("pipeline: empty dataset")
	case cfg.BatchSize <= 0:
		return nil, fmt.Errorf("pipeline: BatchSize = %d, want > 0", cfg.BatchSize)
	case cfg.DropLast && n < cfg.BatchSize:
		return nil, fmt.Errorf("pipeline: %d images make no full batch of %d", n, cfg.BatchSize)
	case cfg.Workers < 0 || cfg.Prefetch < 0 || cfg.Epochs < 0 || cfg.Epoch < 0 || cfg.Step < 0:
		return nil, errors.New("pipeline: Workers, Prefetch, Epoch, Step and Epochs must be ≥ 0")
	case cfg.Ranks > 1 && (cfg.BatchSize%cfg.Ranks != 0 || !cfg.DropLast || cfg.Rank < 0 || cfg.Rank >= cfg.Ranks):
		return nil, fmt.Errorf("pipeline: rank %d of %d: the batch of %d must divide into equal parts and drop the last incomplete one", cfg.Rank, cfg.Ranks, cfg.BatchSize)
	case !(cfg.MaxBadFraction >= 0 && cfg.MaxBadFraction <= 1):
		return nil, fmt.Errorf("pipeline: MaxBadFraction = %g, want a fraction in [0, 1]", cfg.MaxBadFraction)
	}
	if cfg.MaxBadFraction == 0 {
		cfg.MaxBadFraction = DefaultMaxBadFraction
	}
	if cfg.Workers == 0 {
		cfg.Workers = runtime.NumCPU()
	}
	if cfg.Prefetch == 0 {
		cfg.Prefetch = 2 * cfg.Workers
	}
	l := &Loader{
		ds:      ds,
		views:   views,
		cfg:     cfg,
		steps:   n / cfg.BatchSize,
		total:   -1,
		jobs:    make(chan job),
		results: make(chan result, cfg.Prefetch),
		tokens:  make(chan struct{}, cfg.Prefetch),
		free:    make(chan *Batch, cfg.Prefetch+cfg.Workers),
		done:    make(chan struct{}),
		pending: make(map[int]result),
		skipped: make(map[int]Skip),
	}
	if cfg.SkipBad {
		l.tried = make([]uint64, (n+63)/64)
	}
	if !cfg.DropLast && n%cfg.BatchSize != 0 {
		l.steps++
	}
	if cfg.Step >= l.steps {
		return nil, fmt.Errorf("pipeline: Step = %d, but an epoch has %d batches", cfg.Step, l.steps)
	}
	if cfg.Epochs > 0 {
		l.total = cfg.Epochs*l.steps - cfg.Step
	}
	ws := make([]*worker, cfg.Workers)
	for i := range ws {
		w := &worker{l: l}
		w.rng = rand.New(&w.pcg)
		for _, v := range views {
			a, err := NewAugmenter(v)
			if err != nil {
				return nil, err
			}
			w.augs = append(w.augs, a)
		}
		ws[i] = w
	}
	l.idle = sync.NewCond(&l.runMu)
	l.running = 1 + len(ws)
	go l.dispatch()
	for _, w := range ws {
		go w.run()
	}
	return l, nil
}

// StepsPerEpoch is the number of batches in one epoch.
func (l *Loader) StepsPerEpoch() int { return l.steps }

// Permutation returns the order in which an epoch visits the dataset.
func (l *Loader) Permutation(epoch int) []int {
	n := l.ds.Len()
	if !l.cfg.Shuffle {
		perm := make([]int, n)
		for i := range perm {
			perm[i] = i
		}
		return perm
	}
	r := rand.New(rand.NewPCG(splitmix(l.cfg.Seed), splitmix(uint64(epoch))^0x5eed))
	return r.Perm(n)
}

// exited takes a goroutine off the count Close waits for.
func (l *Loader) exited() {
	l.runMu.Lock()
	l.running--
	l.idle.Broadcast()
	l.runMu.Unlock()
}

func (l *Loader) dispatch() {
	defer l.exited()
	defer close(l.jobs)
	bs := l.cfg.BatchSize
	for epoch := l.cfg.Epoch; ; epoch++ {
		perm := l.Permutation(epoch)
		first := 0
		if epoch == l.cfg.Epoch {
			first = l.cfg.Step
		}
		for step := first; step < l.steps; step++ {
			seq := (epoch-l.cfg.Epoch)*l.steps + step - l.cfg.Step
			if seq == l.total {
				return
			}
			select {
			case l.tokens <- struct{}{}:
			case <-l.done:
				return
			}
			idx := perm[step*bs : min((step+1)*bs, len(perm))]
			if l.cfg.Ranks > 1 {
				per := bs / l.cfg.Ranks
				idx = idx[l.cfg.Rank*per : (l.cfg.Rank+1)*per]
			}
			j := job{seq: seq, epoch: epoch, step: step, idx: idx}
			select {
			case l.jobs <- j:
			case <-l.done:
				return
			}
		}
	}
}

// Next returns the next batch in order. It returns io.EOF after the last
// configured epoch, the error of a batch that failed or of too many bad
// images (and keeps returning it), or ErrClosed after Close.
func (l *Loader) Next() (*Batch, error) { return l.NextContext(context.Background()) }

// NextContext is Next that gives up waiting when ctx ends, returning an
// error that wraps ctx's cause: a file that never finishes reading (a
// named pipe, a stuck network mount) then holds up no one who can cancel.
// The batch it gave up on is still the next one a later call returns.
func (l *Loader) NextContext(ctx context.Context) (*Batch, error) {
	if l.err != nil {
		return nil, l.err
	}
	if l.next == l.total {
		return nil, io.EOF
	}
	for {
		if r, ok := l.pending[l.next]; ok {
			delete(l.pending, l.next)
			l.next++
			<-l.tokens
			if r.err == nil {
				r.err = l.account(r)
			}
			if r.err != nil {
				if r.b != nil {
					l.Recycle(r.b)
				}
				l.err = r.err
				return nil, r.err
			}
			return r.b, nil
		}
		select {
		case r := <-l.results:
			l.pending[r.seq] = r
		case <-l.done:
			return nil, ErrClosed
		case <-ctx.Done():
			return nil, fmt.Errorf("pipeline: waiting for batch %d: %w", l.next, context.Cause(ctx))
		}
	}
}

// Recycle hands a batch the caller has finished with back to the workers,
// which then fill it instead of allocating a new one. Optional.
func (l *Loader) Recycle(b *Batch) {
	select {
	case l.free <- b:
	default:
	}
}

// Skipped lists, by index, the bad images found in the batches Next has
// returned so far (with SkipBad); its length is their count.
func (l *Loader) Skipped() []Skip {
	l.skipMu.Lock()
	defer l.skipMu.Unlock()
	out := make([]Skip, 0, len(l.skipped))
	for _, s := range l.skipped {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Skip) int { return a.Index - b.Index })
	return out
}

// Close stops the workers and waits for them, except for one blocked in
// the dataset's Load or ReadFile, which the loader cannot interrupt (a
// named pipe, a stuck network mount): it exits when that call returns,
// touching nothing but its own buffers. Next then returns ErrClosed.
func (l *Loader) Close() error {
	select {
	case <-l.done:
	default:
		close(l.done)
	}
	l.runMu.Lock()
	l.closed = true
	for l.running > 0 {
		l.idle.Wait()
	}
	l.runMu.Unlock()
	l.err = ErrClosed
	return nil
}

type worker struct {
	l      *Loader
	augs   []*Augmenter
	src    Image
	pcg    rand.PCG
	rng    *rand.Rand
	bad    []Skip   // of the batch being built; a new slice per batch, as Next keeps it
	params []Params // this sample's draw per view
	data   []byte   // the encoded file
	img8   Image8   // decoded source of a non-raw loader
	tmp8   Image8   // decoded source before EXIF orientation
	// reading: inside a dataset call, no longer counted in l.running, so
	// that Close does not wait for a read that may never return.
	reading bool
}

// read calls fn, a dataset read, uncounted in l.running; once the loader
// is closed, a read that returns finds the worker already let go.
func (w *worker) read(fn func() error) error {
	w.reading = true
	w.l.exited()
	err := fn()
	w.l.runMu.Lock()
	defer w.l.runMu.Unlock()
	if w.l.closed {
		return ErrClosed
	}
	w.l.running++
	w.reading = false
	return err
}

func (w *worker) run() {
	defer func() {
		if !w.reading {
			w.l.exited()
		}
	}()
	for {
		select {
		case j, ok := <-w.l.jobs:
			if !ok {
				return
			}
			b, err := w.batch(j)
			w.l.results <- result{seq: j.seq, b: b, bad: w.bad, err: err}
		case <-w.l.done:
			return
		}
	}
}

func (w *worker) getBatch(n, c, s int) *Batch {
	var b *Batch
	select {
	case b = <-w.l.free:
	default:
		b = &Batch{}
	}
	sz := n * c * s * s
	grow := func(p []float32) []float32 {
		if cap(p) < sz {
			return make([]float32, sz)
		}
		return p[:sz]
	}
	if w.l.cfg.Raw {
		b.A, b.B = nil, nil
		if cap(b.Images) < n {
			b.Images = make([]Image8, n)
		}
		b.Images = b.Images[:n]
		b.Params = b.Params[:0]
		for range w.augs {
			b.Params = append(b.Params, make([]Params, n))
		}
	} else {
		b.A = grow(b.A)
		if len(w.augs) == 2 {
			b.B = grow(b.B)
		} else {
			b.B = nil
		}
	}
	if cap(b.Labels) < n {
		b.Labels, b.Index = make([]int32, n), make([]int, n)
	}
	b.Labels, b.Index = b.Labels[:n], b.Index[:n]
	b.N, b.C, b.H, b.W = n, c, s, s
	return b
}

func (w *worker) batch(j job) (*Batch, error) {
	v := &w.augs[0].cfg
	c, s := v.Channels(), v.Size
	sz := c * s * s
	b := w.getBatch(len(j.idx), c, s)
	b.Epoch, b.Step = j.epoch, j.step
	w.bad = nil
	for k, idx := range j.idx {
		img8 := &w.img8
		if w.l.cfg.Raw {
			img8 = &b.Images[k]
		}
		idx, err := w.load(idx, j.epoch, img8)
		if err != nil {
			return nil, err
		}
		if w.l.cfg.Raw {
			for v := range w.augs {
				b.Params[v][k] = w.params[v]
			}
		} else {
			w.augs[0].Apply(b.A[k*sz:(k+1)*sz], &w.src, &w.params[0])
			if len(w.augs) == 2 {
				w.augs[1].Apply(b.B[k*sz:(k+1)*sz], &w.src, &w.params[1])
			}
		}
		b.Labels[k] = int32(w.l.ds.Label(idx))
		b.Index[k] = idx
	}
	return b, nil
}

// load reads image idx, or with SkipBad the first loadable image after it
// when idx is broken, and draws every view for it into w.params; it returns
// the index of the image loaded. The image lands in img8 for a raw loader
// and in w.src otherwise.
func (w *worker) load(idx, epoch int, img8 *Image8) (int, error) {
	n := w.l.ds.Len()
	tries := min(n, maxSubstitutes)
	var first error
	for try := range tries {
		i := (idx + try) % n
		err := w.sample(i, epoch, img8)
		if err == nil {
			return i, nil
		}
		if !w.l.cfg.SkipBad {
			return 0, err
		}
		if first == nil {
			first = err
		}
		w.bad = append(w.bad, Skip{Index: i, Err: err})
	}
	return 0, fmt.Errorf("pipeline: %d images in a row from index %d failed to load; the first: %w", tries, idx, first)
}

// sample loads image i and draws its views. Every sample draws from its own
// generator seeded with (seed, epoch, index), views in order, so the draw
// is the same whichever path decodes the image or augments it.
func (w *worker) sample(i, epoch int, img8 *Image8) error {
	w.params = w.params[:0]
	seed := func() { w.pcg.Seed(splitmix(w.l.cfg.Seed^splitmix(uint64(epoch))), splitmix(uint64(i))) }
	raw := w.l.cfg.Raw
	enc, ok := w.l.ds.(Encoded)
	if !ok {
		if err := w.read(func() error { return w.l.ds.Load(i, &w.src) }); err != nil {
			return err
		}
		seed()
		for _, a := range w.augs {
			w.params = append(w.params, a.Draw(w.rng, w.src.H, w.src.W))
		}
		if raw {
			img8.FromImage(&w.src)
		}
		return nil
	}
	// ReadFile refuses what Load would refuse before decoding (an empty
	// file, an unreadable header, too many pixels), so both paths stop or
	// skip on the same images with the same errors.
	var data []byte
	var hdr ImageHeader
	if err := w.read(func() (err error) { data, hdr, err = enc.ReadFile(i, w.data); return err }); err != nil {
		return err
	}
	w.data = data
	seed()
	for _, a := range w.augs {
		w.params = append(w.params, a.Draw(w.rng, hdr.H, hdr.W))
	}
	denom := scaleFor(w.params, w.l.views)
	if err := decodeScaled(data, hdr, denom, img8, &w.tmp8); err != nil {
		return fmt.Errorf("pipeline: %s: decoding the %s image: %w", enc.Path(i), hdr.Format, err)
	}
	for v := range w.params {
		w.params[v].Crop = w.params[v].Crop.Scaled(denom)
	}
	c := w.l.ds.Channels()
	if raw {
		if c == 1 {
			img8.toGray()
		}
		return nil
	}
	img8.ToImage(&w.src, c)
	return nil
}

// account records the images a returned batch tried, reports its bad ones
// that are new, and fails once more than MaxBadFraction of the images tried
// are bad.
func (l *Loader) account(r result) error {
	if !l.cfg.SkipBad {
		return nil
	}
	l.skipMu.Lock()
	for _, i := range r.b.Index {
		l.markTried(i)
	}
	var fresh []Skip
	for _, s := range r.bad {
		l.markTried(s.Index)
		if _, seen := l.skipped[s.Index]; !seen {
			if len(l.skipped) == 0 {
				l.firstBad = s
			}
			l.skipped[s.Index] = s
			fresh = append(fresh, s)
		}
	}
	bad, tried, first := len(l.skipped), l.nTried, l.firstBad
	l.skipMu.Unlock()
	// Called without the lock, so that OnSkip may call Skipped.
	if l.cfg.OnSkip != nil {
		for _, s := range fresh {
			l.cfg.OnSkip(s)
		}
	}
	of := max(tried, min(l.ds.Len(), BadFractionFloor))
	// The epsilon keeps a product such as 0.29 × 100 = 28.999999999999996
	// from allowing one image fewer than the fraction says.
	if allowed := int(math.Floor(l.cfg.MaxBadFraction*float64(of) + 1e-9)); bad > allowed {
		return fmt.Errorf("pipeline: %d of the %d images tried so far failed to load, more than MaxBadFraction %g of %d images allows (%d); the first: %w",
			bad, tried, l.cfg.MaxBadFraction, of, allowed, first.Err)
	}
	return nil
}

func (l *Loader) markTried(i int) {
	if w, bit := &l.tried[i/64], uint64(1)<<(i%64); *w&bit == 0 {
		*w |= bit
		l.nTried++
	}
}
