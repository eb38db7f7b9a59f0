package serve

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"image/png"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/disintegration/imaging"
	"gonum.org/v1/gonum/mat"
	"gonum.org/v1/gonum/stat"

	"github.com/bt-org/bt/bt/encoder"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/gpu"
	"github.com/bt-org/bt/pipeline"
)

// Source is where the images a checkpoint embeds come from.
type Source string

const (
	RunData Source = "run"    // the run's own dataset (its test split where it has one)
	Images  Source = "images" // the folder given as Options.Images
)

// MaxSample is the most images one embedding takes: the page draws each
// as a point and compares a picked one with all of them.
const MaxSample = 5000

// Embedding is a checkpoint's representations of a sample of images, as
// cached: unit vectors, so that a dot product is a cosine similarity.
type Embedding struct {
	Checkpoint string // the checkpoint's SHA-256
	Source     Source
	Index      []int    // the images' indices in their dataset
	Names      []string // what the page shows for each
	Labels     []int    // -1 for unlabeled images
	Classes    []string
	Dim        int
	Z          []float32 // len(Index) × Dim
}

// job is one embedding, running or done.
type job struct {
	key, run, ckpt string
	source         Source
	n              int

	mu          sync.Mutex
	state       string // "embedding", "done", "failed"
	done, total int
	err         string
	started     time.Time
	emb         *Embedding
	xy          [][2]float64
	variance    [2]float64
	ds          pipeline.Dataset
}

// embedder runs embeddings one at a time on the device it opens at the
// first, and keeps their results.
type embedder struct {
	s      *Server
	mu     sync.Mutex
	jobs   map[string]*job
	hashes map[string]hashMemo
	dev    *gpu.Device
	work   sync.Mutex // the device embeds one sample at a time
	wg     sync.WaitGroup
	ctx    context.Context
	cancel context.CancelFunc
}

type hashMemo struct {
	size int64
	mod  time.Time
	sum  string
}

func newEmbedder(s *Server) *embedder {
	ctx, cancel := context.WithCancel(context.Background())
	return &embedder{s: s, jobs: map[string]*job{}, hashes: map[string]hashMemo{}, ctx: ctx, cancel: cancel}
}

func (e *embedder) close() {
	e.cancel()
	e.wg.Wait()
	if e.dev != nil {
		e.dev.Release()
	}
}

// embedRequest is what the page posts to start an embedding.
type embedRequest struct {
	Run        string `json:"run"`
	Checkpoint string `json:"checkpoint"`
	Source     Source `json:"source"`
	N          int    `json:"n"`
}

// handleStart starts (or finds, running, done or cached) the embedding of
// a sample by a run's checkpoint and answers its status. It takes JSON
// only, which a page elsewhere cannot post without the CORS preflight
// this server never answers.
func (e *embedder) handleStart(w http.ResponseWriter, r *http.Request) {
	if r.Header.Get("Content-Type") != "application/json" {
		fail(w, &httpError{http.StatusUnsupportedMediaType, "post the request as application/json"})
		return
	}
	var req embedRequest
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(&req); err != nil {
		fail(w, &httpError{http.StatusBadRequest, "request: " + err.Error()})
		return
	}
	j, err := e.start(req)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, j.status())
}

func (e *embedder) start(req embedRequest) (*job, error) {
	id, err := cleanID(req.Run)
	if err != nil {
		return nil, err
	}
	run, err := e.s.readRun(id)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", id, err)
	}
	if !slices.Contains(run.Checkpoints, req.Checkpoint) {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("run %s has no checkpoint %q (it has %v)", id, req.Checkpoint, run.Checkpoints)}
	}
	switch {
	case req.Source == Images && e.s.opts.Images == "":
		return nil, &httpError{http.StatusBadRequest, "no images folder: start bt serve with -images DIR to embed your own images"}
	case req.Source != Images && req.Source != RunData:
		return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("source %q: want %q or %q", req.Source, RunData, Images)}
	case req.N < 2 || req.N > MaxSample:
		return nil, &httpError{http.StatusBadRequest, fmt.Sprintf("n %d: embed from 2 to %d images", req.N, MaxSample)}
	}
	name := path.Join(id, req.Checkpoint)
	sum, err := e.hash(name)
	if err != nil {
		return nil, err
	}
	source := string(req.Source)
	if req.Source == Images {
		if source, err = e.folderDigest(); err != nil {
			return nil, err
		}
	}
	k := sha256.Sum256(fmt.Appendf(nil, "%s\n%s\n%d", sum, source, req.N))
	key := hex.EncodeToString(k[:12])

	e.mu.Lock()
	defer e.mu.Unlock()
	if j, ok := e.jobs[key]; ok {
		j.mu.Lock()
		failed := j.state == "failed"
		j.mu.Unlock()
		if !failed {
			return j, nil
		}
	}
	j := &job{key: key, run: id, ckpt: req.Checkpoint, source: req.Source, n: req.N, state: "embedding", started: time.Now()}
	e.jobs[key] = j
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		err := e.run(j, filepath.Join(e.s.opts.Root, filepath.FromSlash(name)), sum)
		j.mu.Lock()
		defer j.mu.Unlock()
		if err != nil {
			j.state, j.err = "failed", err.Error()
			return
		}
		j.state = "done"
	}()
	return j, nil
}

// folderDigest names the images folder as it is now: its path and every
// image's name, size and time, so that a changed folder is embedded anew.
func (e *embedder) folderDigest() (string, error) {
	ds, err := pipeline.Open("folder-unlabeled", e.s.opts.Images, "train")
	if err != nil {
		return "", &httpError{http.StatusBadRequest, err.Error()}
	}
	h := sha256.New()
	abs, _ := filepath.Abs(e.s.opts.Images)
	fmt.Fprintln(h, abs)
	enc := ds.(pipeline.Encoded)
	for i := range ds.Len() {
		if fi, err := os.Stat(enc.Path(i)); err == nil {
			fmt.Fprintln(h, enc.Path(i), fi.Size(), fi.ModTime().UnixNano())
		}
	}
	return "images:" + hex.EncodeToString(h.Sum(nil)), nil
}

// hash is the SHA-256 of a checkpoint under the root, remembered while
// its size and time stay the same: a running run replaces
// checkpoint.safetensors, and its new contents are a new cache entry.
func (e *embedder) hash(name string) (string, error) {
	f, err := e.s.root.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	e.mu.Lock()
	m, ok := e.hashes[name]
	e.mu.Unlock()
	if ok && m.size == fi.Size() && m.mod.Equal(fi.ModTime()) {
		return m.sum, nil
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	e.mu.Lock()
	e.hashes[name] = hashMemo{fi.Size(), fi.ModTime(), sum}
	e.mu.Unlock()
	return sum, nil
}

// run embeds j's sample with the checkpoint at path, or reads it from the
// cache, and computes its PCA map.
func (e *embedder) run(j *job, ckpt, sum string) error {
	cache := filepath.Join(e.s.opts.CacheDir, j.key+".gob")
	emb, err := readCache(cache, sum)
	if err != nil {
		e.work.Lock()
		emb, err = e.embed(j, ckpt, sum)
		e.work.Unlock()
		if err != nil {
			return err
		}
		if err := writeCache(cache, emb); err != nil {
			return fmt.Errorf("caching the embeddings: %w", err)
		}
	}
	xy, variance := pca(emb)
	j.mu.Lock()
	j.emb, j.xy, j.variance = emb, xy, variance
	j.done, j.total = len(emb.Index), len(emb.Index)
	j.mu.Unlock()
	return nil
}

// dataset opens the images j embeds: the checkpoint's dataset (its test
// split, else its training split) or the user's folder.
func (e *embedder) dataset(source Source, data train.DataConfig) (pipeline.Dataset, error) {
	if source == Images {
		return pipeline.Open("folder-unlabeled", e.s.opts.Images, "train")
	}
	ds, err := pipeline.Open(data.Name, data.Dir, "test")
	if err != nil {
		return pipeline.Open(data.Name, data.Dir, "train")
	}
	return ds, nil
}

func (e *embedder) embed(j *job, ckpt, sum string) (*Embedding, error) {
	c, err := train.LoadCheckpoint(ckpt)
	if err != nil {
		return nil, err
	}
	ds, err := e.dataset(j.source, c.Data)
	if err != nil {
		return nil, err
	}
	idx := sample(ds.Len(), j.n)
	j.mu.Lock()
	j.ds, j.total = ds, len(idx)
	j.mu.Unlock()
	e.mu.Lock()
	if e.dev == nil {
		e.dev, err = gpu.Open(gpu.Options{Adapter: e.s.opts.Adapter})
	}
	d := e.dev
	e.mu.Unlock()
	if err != nil {
		return nil, err
	}
	enc, err := encoder.Load(d, ckpt)
	if err != nil {
		return nil, err
	}
	defer enc.Release()
	emb := &Embedding{Checkpoint: sum, Source: j.source, Index: idx, Classes: ds.ClassNames(), Dim: enc.Dim}
	var img pipeline.Image
	for start := 0; start < len(idx); start += enc.Batch {
		if err := e.ctx.Err(); err != nil {
			return nil, err
		}
		batch := make([]image.Image, 0, enc.Batch)
		for _, i := range idx[start:min(start+enc.Batch, len(idx))] {
			if err := ds.Load(i, &img); err != nil {
				return nil, err
			}
			batch = append(batch, img.ToNRGBA())
			emb.Names = append(emb.Names, imageName(ds, i, e.s.opts.Images))
			emb.Labels = append(emb.Labels, ds.Label(i))
		}
		z, err := enc.Embed(batch)
		if err != nil {
			return nil, err
		}
		for _, v := range z {
			emb.Z = append(emb.Z, unit(v)...)
		}
		j.mu.Lock()
		j.done = start + len(batch)
		j.mu.Unlock()
	}
	return emb, nil
}

// sample is n indices of a dataset of size images, drawn with a fixed
// seed (all of them when n is that many or more), in order.
func sample(size, n int) []int {
	if n >= size {
		idx := make([]int, size)
		for i := range idx {
			idx[i] = i
		}
		return idx
	}
	idx := rand.New(rand.NewPCG(1, 2)).Perm(size)[:n]
	slices.Sort(idx)
	return idx
}

func imageName(ds pipeline.Dataset, i int, root string) string {
	if enc, ok := ds.(pipeline.Encoded); ok {
		p := enc.Path(i)
		if rel, err := filepath.Rel(root, p); err == nil && root != "" {
			return filepath.ToSlash(rel)
		}
		return filepath.Base(p)
	}
	return "#" + strconv.Itoa(i)
}

func unit(v []float32) []float32 {
	var s float64
	for _, x := range v {
		s += float64(x) * float64(x)
	}
	out := make([]float32, len(v))
	if s == 0 {
		return out
	}
	inv := 1 / math.Sqrt(s)
	for i, x := range v {
		out[i] = float32(float64(x) * inv)
	}
	return out
}

// pca projects the embeddings onto their first two principal components
// and returns the points and the share of the variance each explains.
func pca(emb *Embedding) ([][2]float64, [2]float64) {
	n, d := len(emb.Index), emb.Dim
	xy := make([][2]float64, n)
	if n < 2 || d < 2 {
		return xy, [2]float64{}
	}
	x := mat.NewDense(n, d, nil)
	for i := range n {
		for k := range d {
			x.Set(i, k, float64(emb.Z[i*d+k]))
		}
	}
	var pc stat.PC
	if !pc.PrincipalComponents(x, nil) {
		return xy, [2]float64{}
	}
	var vecs mat.Dense
	pc.VectorsTo(&vecs)
	vars := pc.VarsTo(nil)
	total := 0.0
	for _, v := range vars {
		total += v
	}
	mean := make([]float64, d)
	for k := range d {
		mean[k] = stat.Mean(mat.Col(nil, k, x), nil)
	}
	for i := range n {
		for c := range 2 {
			s := 0.0
			for k := range d {
				s += (x.At(i, k) - mean[k]) * vecs.At(k, c)
			}
			xy[i][c] = s
		}
	}
	var share [2]float64
	if total > 0 {
		share = [2]float64{vars[0] / total, vars[1] / total}
	}
	return xy, share
}

// readCache reads an embedding cached for the checkpoint with SHA-256 sum.
func readCache(file, sum string) (*Embedding, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var emb Embedding
	if err := gob.NewDecoder(f).Decode(&emb); err != nil {
		return nil, err
	}
	if emb.Checkpoint != sum || len(emb.Z) != len(emb.Index)*emb.Dim || len(emb.Names) != len(emb.Index) || len(emb.Labels) != len(emb.Index) {
		return nil, errors.New("a cache entry of another checkpoint or damaged")
	}
	return &emb, nil
}

// writeCache writes emb whole or not at all.
func writeCache(file string, emb *Embedding) error {
	if err := os.MkdirAll(filepath.Dir(file), 0o755); err != nil {
		return err
	}
	var b bytes.Buffer
	if err := gob.NewEncoder(&b).Encode(emb); err != nil {
		return err
	}
	tmp := file + ".tmp"
	if err := os.WriteFile(tmp, b.Bytes(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, file)
}

// Status is an embedding's progress as the page polls it.
type Status struct {
	Key        string     `json:"key"`
	Run        string     `json:"run"`
	Checkpoint string     `json:"checkpoint"`
	Source     Source     `json:"source"`
	State      string     `json:"state"`
	Done       int        `json:"done"`
	Total      int        `json:"total"`
	Error      string     `json:"error,omitempty"`
	Dim        int        `json:"dim,omitempty"`
	Variance   [2]float64 `json:"variance"` // the share of the variance the map's axes explain
	Seconds    float64    `json:"seconds"`
}

func (j *job) status() Status {
	j.mu.Lock()
	defer j.mu.Unlock()
	s := Status{Key: j.key, Run: j.run, Checkpoint: j.ckpt, Source: j.source, State: j.state, Done: j.done, Total: j.total,
		Error: j.err, Variance: j.variance, Seconds: time.Since(j.started).Seconds()}
	if j.emb != nil {
		s.Dim = j.emb.Dim
	}
	return s
}

// lookup finds a finished job by the request's key.
func (e *embedder) lookup(r *http.Request) (*job, error) {
	key := r.URL.Query().Get("key")
	e.mu.Lock()
	j, ok := e.jobs[key]
	e.mu.Unlock()
	if !ok {
		return nil, &httpError{http.StatusNotFound, fmt.Sprintf("no embedding %q; post one to /api/embed", key)}
	}
	return j, nil
}

func (e *embedder) finished(r *http.Request) (*job, error) {
	j, err := e.lookup(r)
	if err != nil {
		return nil, err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.emb == nil || j.state != "done" {
		return nil, &httpError{http.StatusConflict, fmt.Sprintf("embedding %s is %s", j.key, j.state)}
	}
	return j, nil
}

func (e *embedder) handleStatus(w http.ResponseWriter, r *http.Request) {
	j, err := e.lookup(r)
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, j.status())
}

// Point is an image on the PCA map.
type Point struct {
	I     int     `json:"i"` // its place in the sample
	X     float64 `json:"x"`
	Y     float64 `json:"y"`
	Label int     `json:"label"`
	Name  string  `json:"name"`
}

func (e *embedder) handleMap(w http.ResponseWriter, r *http.Request) {
	j, err := e.finished(r)
	if err != nil {
		fail(w, err)
		return
	}
	pts := make([]Point, len(j.xy))
	for i, p := range j.xy {
		pts[i] = Point{I: i, X: p[0], Y: p[1], Label: j.emb.Labels[i], Name: j.emb.Names[i]}
	}
	classes := j.emb.Classes
	if classes == nil {
		classes = []string{}
	}
	writeJSON(w, map[string]any{"points": pts, "classes": classes, "variance": j.variance})
}

// Neighbour is an image near the one picked: Distance is the cosine
// distance, 1 − cos, between their representations.
type Neighbour struct {
	I        int     `json:"i"`
	Name     string  `json:"name"`
	Label    int     `json:"label"`
	Distance float64 `json:"distance"`
}

// Neighbours are the k images of emb nearest image i, nearest first.
func Neighbours(emb *Embedding, i, k int) []Neighbour {
	d := emb.Dim
	q := emb.Z[i*d : (i+1)*d]
	var out []Neighbour
	for o := range emb.Index {
		if o == i {
			continue
		}
		dot := 0.0
		for c, v := range emb.Z[o*d : (o+1)*d] {
			dot += float64(v) * float64(q[c])
		}
		out = append(out, Neighbour{I: o, Name: emb.Names[o], Label: emb.Labels[o], Distance: max(0, 1-dot)})
	}
	slices.SortStableFunc(out, func(a, b Neighbour) int {
		switch {
		case a.Distance < b.Distance:
			return -1
		case a.Distance > b.Distance:
			return 1
		}
		return 0
	})
	return out[:min(k, len(out))]
}

// picked is the finished job a request names and the image index i it
// asks for within that job's sample.
func (e *embedder) picked(r *http.Request) (*job, int, error) {
	j, err := e.finished(r)
	if err != nil {
		return nil, 0, err
	}
	i, err := strconv.Atoi(r.URL.Query().Get("i"))
	if err != nil || i < 0 || i >= len(j.emb.Index) {
		return nil, 0, &httpError{http.StatusBadRequest, fmt.Sprintf("i %q: want an image of the sample, 0 to %d", r.URL.Query().Get("i"), len(j.emb.Index)-1)}
	}
	return j, i, nil
}

func (e *embedder) handleNeighbours(w http.ResponseWriter, r *http.Request) {
	j, i, err := e.picked(r)
	if err != nil {
		fail(w, err)
		return
	}
	k := 12
	if s := r.URL.Query().Get("k"); s != "" {
		if k, err = strconv.Atoi(s); err != nil || k < 1 {
			fail(w, &httpError{http.StatusBadRequest, fmt.Sprintf("k %q: want 1 or more", s)})
			return
		}
	}
	writeJSON(w, map[string]any{"i": i, "name": j.emb.Names[i], "label": j.emb.Labels[i], "neighbours": Neighbours(j.emb, i, k)})
}

// thumb is the largest side of the images the page shows.
const thumb = 96

// handleImage answers an image of a sample as a PNG of at most thumb
// pixels a side: images are named by their place in the sample, never by
// a path.
func (e *embedder) handleImage(w http.ResponseWriter, r *http.Request) {
	j, i, err := e.picked(r)
	if err != nil {
		fail(w, err)
		return
	}
	j.mu.Lock()
	ds := j.ds
	j.mu.Unlock()
	if ds == nil { // read from the cache: open the images again
		data := train.DataConfig{}
		if j.source == RunData {
			c, err := train.LoadCheckpoint(filepath.Join(e.s.opts.Root, filepath.FromSlash(path.Join(j.run, j.ckpt))))
			if err != nil {
				fail(w, err)
				return
			}
			data = c.Data
		}
		if ds, err = e.dataset(j.source, data); err != nil {
			fail(w, err)
			return
		}
		j.mu.Lock()
		j.ds = ds
		j.mu.Unlock()
	}
	var img pipeline.Image
	if err := ds.Load(j.emb.Index[i], &img); err != nil {
		fail(w, err)
		return
	}
	var out image.Image = img.ToNRGBA()
	if img.W > thumb || img.H > thumb {
		out = imaging.Fit(out, thumb, thumb, imaging.Linear)
	}
	var b bytes.Buffer
	if err := png.Encode(&b, out); err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "max-age=3600")
	w.Write(b.Bytes())
}
