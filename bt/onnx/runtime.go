package onnx

import (
	"encoding/json"
	"errors"
	"fmt"
	"image"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"github.com/bt-org/bt/pipeline"
)

// ONNX Runtime is driven through github.com/yalue/onnxruntime_go, which
// opens the shared library at run time; its v1.38.0 is built against the C
// API of ONNX Runtime 1.31, and the library of that release comes from the
// npm package onnxruntime-node, which scripts/setup.sh installs.
const (
	// LibraryEnv names the environment variable that holds the path of
	// ONNX Runtime's shared library, when it is not where
	// scripts/setup.sh installs it (DefaultLibraryPath).
	LibraryEnv = "BT_ONNXRUNTIME"
	// RuntimeVersion is the ONNX Runtime release the binding expects.
	RuntimeVersion = "1.31.1"
)

// ErrNoRuntime is returned when ONNX Runtime's shared library is not found.
var ErrNoRuntime = errors.New("onnx: ONNX Runtime's shared library is not installed")

// DefaultLibraryPath is where scripts/setup.sh installs ONNX Runtime: the
// npm package onnxruntime-node under the user's cache directory.
func DefaultLibraryPath() (string, error) {
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	arch := map[string]string{"amd64": "x64", "arm64": "arm64"}[runtime.GOARCH]
	lib := "libonnxruntime.so.1"
	if runtime.GOOS == "darwin" {
		lib = "libonnxruntime." + RuntimeVersion + ".dylib"
	}
	return filepath.Join(cache, "bt", "onnxruntime-node-"+RuntimeVersion, "node_modules", "onnxruntime-node", "bin", "napi-v6", runtime.GOOS, arch, lib), nil
}

// LibraryPath is the shared library Open loads: $BT_ONNXRUNTIME, or
// DefaultLibraryPath. It is an error wrapping ErrNoRuntime when the file
// does not exist.
func LibraryPath() (string, error) {
	path := os.Getenv(LibraryEnv)
	if path == "" {
		var err error
		if path, err = DefaultLibraryPath(); err != nil {
			return "", err
		}
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("%w: %s is absent (run scripts/setup.sh, or set %s to libonnxruntime of ONNX Runtime %s)", ErrNoRuntime, path, LibraryEnv, RuntimeVersion)
	}
	return path, nil
}

var (
	envOnce sync.Once
	envErr  error
)

// initRuntime loads ONNX Runtime once per process.
func initRuntime() error {
	envOnce.Do(func() {
		if ort.IsInitialized() {
			return
		}
		path, err := LibraryPath()
		if err != nil {
			envErr = err
			return
		}
		ort.SetSharedLibraryPath(path)
		if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
			envErr = fmt.Errorf("onnx: loading ONNX Runtime from %s: %w", path, err)
		}
	})
	return envErr
}

// SessionOptions tunes a Session.
type SessionOptions struct {
	// Threads is the number of threads an inference uses; 0 lets ONNX
	// Runtime choose (one per core).
	Threads int
}

// Session is an ONNX model exported by bt, loaded into ONNX Runtime on the
// CPU. It is safe for concurrent use.
type Session struct {
	// Outputs names the graph's outputs (OutputName, and ProjectorName in
	// an export with the projector); Widths are their widths.
	Outputs []string
	Widths  []int
	// View is the preprocessing recorded in the model's metadata.
	View pipeline.ViewConfig
	// Meta is the model's metadata.
	Meta map[string]string

	s     *ort.DynamicAdvancedSession
	augs  sync.Pool
	inDim [3]int64
}

// Open loads an ONNX model written by Write. A model without bt's
// preprocessing in its metadata is refused: its input could not be
// prepared as it was trained.
func Open(path string, opt SessionOptions) (*Session, error) {
	if opt.Threads < 0 {
		return nil, fmt.Errorf("onnx: %d threads", opt.Threads)
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	if err := initRuntime(); err != nil {
		return nil, err
	}
	ins, outs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	if len(ins) != 1 || ins[0].Name != InputName || len(ins[0].Dimensions) != 4 {
		return nil, fmt.Errorf("onnx: %s is not a bt export: it should take one input %q [batch, C, H, W]", path, InputName)
	}
	s := &Session{Meta: map[string]string{}}
	copy(s.inDim[:], ins[0].Dimensions[1:])
	for _, o := range outs {
		if len(o.Dimensions) != 2 || o.Dimensions[1] < 1 {
			return nil, fmt.Errorf("onnx: %s: output %q is not [batch, width]", path, o.Name)
		}
		s.Outputs = append(s.Outputs, o.Name)
		s.Widths = append(s.Widths, int(o.Dimensions[1]))
	}
	md, err := ort.GetModelMetadata(path)
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	defer md.Destroy()
	keys, err := md.GetCustomMetadataMapKeys()
	if err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	for _, k := range keys {
		if s.Meta[k], _, err = md.LookupCustomMetadataMap(k); err != nil {
			return nil, fmt.Errorf("onnx: %s: %w", path, err)
		}
	}
	if err := json.Unmarshal([]byte(s.Meta[MetaView]), &s.View); err != nil {
		return nil, fmt.Errorf("onnx: %s records no preprocessing (metadata %q): %v", path, MetaView, err)
	}
	if err := s.View.Validate(); err != nil {
		return nil, fmt.Errorf("onnx: %s: its preprocessing: %w", path, err)
	}
	if c, sz := int64(s.View.Channels()), int64(s.View.Size); s.inDim != [3]int64{c, sz, sz} {
		return nil, fmt.Errorf("onnx: %s takes %v images, its preprocessing makes [%d %d %d]", path, s.inDim, c, sz, sz)
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, err
	}
	defer so.Destroy()
	if opt.Threads > 0 {
		if err := so.SetIntraOpNumThreads(opt.Threads); err != nil {
			return nil, err
		}
	}
	if s.s, err = ort.NewDynamicAdvancedSession(path, []string{InputName}, s.Outputs, so); err != nil {
		return nil, fmt.Errorf("onnx: %s: %w", path, err)
	}
	return s, nil
}

// Run runs the model on n images already preprocessed as View prescribes,
// x [n, C, Size, Size], and returns each output in the order of Outputs,
// [n, width].
func (s *Session) Run(x []float32, n int) ([][]float32, error) {
	per := int(s.inDim[0] * s.inDim[1] * s.inDim[2])
	if n < 1 || len(x) != n*per {
		return nil, fmt.Errorf("onnx: %d values for %d images of %v", len(x), n, s.inDim)
	}
	in, err := ort.NewTensor(ort.NewShape(int64(n), s.inDim[0], s.inDim[1], s.inDim[2]), x)
	if err != nil {
		return nil, err
	}
	defer in.Destroy()
	outs := make([]ort.Value, len(s.Outputs))
	for i, w := range s.Widths {
		t, err := ort.NewEmptyTensor[float32](ort.NewShape(int64(n), int64(w)))
		if err != nil {
			return nil, err
		}
		defer t.Destroy()
		outs[i] = t
	}
	if err := s.s.Run([]ort.Value{in}, outs); err != nil {
		return nil, fmt.Errorf("onnx: %w", err)
	}
	res := make([][]float32, len(outs))
	for i, o := range outs {
		res[i] = append([]float32(nil), o.(*ort.Tensor[float32]).GetData()...)
	}
	return res, nil
}

// Embed preprocesses images as View prescribes and returns, for each
// output in the order of Outputs, one vector per image.
func (s *Session) Embed(images []image.Image) ([][][]float32, error) {
	if len(images) == 0 {
		return nil, errors.New("onnx: no images to embed")
	}
	aug, _ := s.augs.Get().(*pipeline.Augmenter)
	if aug == nil {
		var err error
		if aug, err = pipeline.NewAugmenter(s.View); err != nil {
			return nil, err
		}
	}
	defer s.augs.Put(aug)
	c, sz := s.View.Channels(), s.View.Size
	per := c * sz * sz
	x := make([]float32, len(images)*per)
	var src pipeline.Image
	rng := rand.New(rand.NewPCG(0, 0)) // the evaluation view draws nothing
	for i, img := range images {
		if img == nil || img.Bounds().Empty() {
			return nil, fmt.Errorf("onnx: image %d is empty", i)
		}
		pipeline.FromImage(&src, img, c)
		aug.View(x[i*per:(i+1)*per], &src, rng)
	}
	outs, err := s.Run(x, len(images))
	if err != nil {
		return nil, err
	}
	res := make([][][]float32, len(outs))
	for k, o := range outs {
		w := s.Widths[k]
		for i := range images {
			res[k] = append(res[k], o[i*w:(i+1)*w:(i+1)*w])
		}
	}
	return res, nil
}

// Close frees the session.
func (s *Session) Close() error { return s.s.Destroy() }
