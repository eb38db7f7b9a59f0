// Package serve is bt serve's web page for the runs under a directory:
// their list and states, each run's curves read from metrics.jsonl as it
// grows, their heat maps, several runs overlaid, and, for a checkpoint,
// the nearest neighbours and a PCA map of a sample of images embedded on
// the device.
//
// It is safe by default: Listen refuses an address that is not loopback
// unless told otherwise, requests naming another host are refused (DNS
// rebinding), only regular files under the runs directory are served
// (through os.Root: no "..", no symlink out of it) and none larger than
// Options.MaxFileBytes, and nothing under the runs directory is written:
// embeddings are cached in the user's cache directory, keyed by the
// checkpoint's contents.
//
//	s, err := serve.New(serve.Options{Root: "runs"})
//	defer s.Close()
//	err = serve.ListenAndServe(ctx, "127.0.0.1:8080", false, s)
package serve

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

//go:embed assets
var assets embed.FS

// Options configure a Server.
type Options struct {
	Root string // the runs directory
	// Images is a folder of the user's own images that the neighbours page
	// may embed besides a run's dataset ("": none).
	Images string
	// Adapter picks the device that embeds (gpu.Options.Adapter).
	Adapter string
	// CacheDir holds the embeddings; "" is bt/embeddings under the user's
	// cache directory.
	CacheDir string
	// MaxFileBytes is the largest file served (0: DefaultMaxFileBytes).
	MaxFileBytes int64
	// AllowRemote accepts requests for any host name, for a server bound
	// to a public address; otherwise only loopback names are answered.
	AllowRemote bool
}

// DefaultMaxFileBytes is the largest file served unless told otherwise:
// heat maps and plots are tens of kilobytes.
const DefaultMaxFileBytes = 32 << 20

// maxMetricsChunk is the most of a metrics file one request returns; the
// page asks again from where it stopped.
const maxMetricsChunk = 4 << 20

// Server is an http.Handler for a runs directory.
type Server struct {
	opts Options
	root *os.Root
	mux  *http.ServeMux
	emb  *embedder
}

// New opens the runs directory; Close releases it and the device.
func New(o Options) (*Server, error) {
	if o.Root == "" {
		return nil, errors.New("serve: no runs directory")
	}
	fi, err := os.Stat(o.Root)
	if err != nil {
		return nil, fmt.Errorf("serve: runs directory: %w", err)
	}
	if !fi.IsDir() {
		return nil, fmt.Errorf("serve: %s is not a directory", o.Root)
	}
	if o.Images != "" {
		if fi, err := os.Stat(o.Images); err != nil || !fi.IsDir() {
			return nil, fmt.Errorf("serve: images folder %s: not a directory (%v)", o.Images, err)
		}
	}
	if o.MaxFileBytes < 0 {
		return nil, fmt.Errorf("serve: MaxFileBytes %d is negative", o.MaxFileBytes)
	}
	if o.MaxFileBytes == 0 {
		o.MaxFileBytes = DefaultMaxFileBytes
	}
	if o.CacheDir == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("serve: no cache directory for embeddings (%v); name one", err)
		}
		o.CacheDir = filepath.Join(dir, "bt", "embeddings")
	}
	root, err := os.OpenRoot(o.Root)
	if err != nil {
		return nil, err
	}
	s := &Server{opts: o, root: root, mux: http.NewServeMux()}
	s.emb = newEmbedder(s)
	static, _ := fs.Sub(assets, "assets")
	s.mux.Handle("GET /", http.FileServerFS(static))
	s.mux.HandleFunc("GET /api/runs", s.handleRuns)
	s.mux.HandleFunc("GET /api/run", s.handleRun)
	s.mux.HandleFunc("GET /api/metrics", s.handleMetrics)
	s.mux.HandleFunc("GET /files/{path...}", s.handleFile)
	s.mux.HandleFunc("POST /api/embed", s.emb.handleStart)
	s.mux.HandleFunc("GET /api/embed", s.emb.handleStatus)
	s.mux.HandleFunc("GET /api/embed/map", s.emb.handleMap)
	s.mux.HandleFunc("GET /api/embed/neighbours", s.emb.handleNeighbours)
	s.mux.HandleFunc("GET /api/embed/image", s.emb.handleImage)
	return s, nil
}

// Close releases the runs directory and the device, once running
// embeddings have stopped.
func (s *Server) Close() error {
	s.emb.close()
	return s.root.Close()
}

// ServeHTTP answers requests for loopback host names only, unless
// Options.AllowRemote: a web page elsewhere cannot reach the server
// through a name of its own that resolves to 127.0.0.1.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !s.opts.AllowRemote && !loopbackHost(r.Host) {
		http.Error(w, "bt serve answers only requests for localhost (run it with -allow-remote to serve others)", http.StatusForbidden)
		return
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'")
	s.mux.ServeHTTP(w, r)
}

func loopbackHost(hostport string) bool {
	host, _, err := net.SplitHostPort(hostport)
	if err != nil {
		host = hostport
	}
	host = strings.Trim(host, "[]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// CheckAddr refuses an address to listen on that is not loopback unless
// allowRemote: an empty host (":8080") or 0.0.0.0 would serve the runs to
// the whole network.
func CheckAddr(addr string, allowRemote bool) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-addr %s: %v", addr, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("-addr %s: port %q is not a number from 0 to 65535", addr, port)
	}
	if allowRemote || strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-addr %s: not a loopback address, so the runs would be served to the network; bind to 127.0.0.1, or give -allow-remote to mean it", addr)
}

// ListenAndServe serves h on addr, after CheckAddr, until ctx ends; ready,
// if not nil, receives the address bound (the port chosen for ":0").
func ListenAndServe(ctx context.Context, addr string, allowRemote bool, h http.Handler, ready func(net.Addr)) error {
	if err := CheckAddr(addr, allowRemote); err != nil {
		return err
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(ln.Addr())
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(shut)
		return nil
	}
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(v)
}

// httpError is an error with the status it is answered with.
type httpError struct {
	code int
	msg  string
}

func (e *httpError) Error() string { return e.msg }

func fail(w http.ResponseWriter, err error) {
	code := http.StatusInternalServerError
	var he *httpError
	switch {
	case errors.As(err, &he):
		code = he.code
	case errors.Is(err, fs.ErrNotExist):
		code = http.StatusNotFound
	case errors.Is(err, fs.ErrPermission):
		code = http.StatusForbidden
	case strings.Contains(err.Error(), "path escapes"):
		code = http.StatusForbidden
	}
	http.Error(w, err.Error(), code)
}

// cleanID checks a run or file path given in a request: relative, slash
// separated, without "." or ".." elements (os.Root refuses those and
// symlinks that leave the directory again when it opens them).
func cleanID(p string) (string, error) {
	if p == "" || p == "." {
		return ".", nil
	}
	if !fs.ValidPath(p) || strings.Contains(p, "\\") {
		return "", &httpError{http.StatusForbidden, fmt.Sprintf("%q is not a path inside the runs directory", p)}
	}
	return p, nil
}

func (s *Server) handleRuns(w http.ResponseWriter, r *http.Request) {
	runs, err := s.listRuns()
	if err != nil {
		fail(w, err)
		return
	}
	if runs == nil {
		runs = []Run{}
	}
	abs, _ := filepath.Abs(s.opts.Root)
	writeJSON(w, map[string]any{"root": abs, "runs": runs, "images": s.opts.Images != ""})
}

func (s *Server) handleRun(w http.ResponseWriter, r *http.Request) {
	id, err := cleanID(r.URL.Query().Get("id"))
	if err != nil {
		fail(w, err)
		return
	}
	run, err := s.readRun(id)
	if err != nil {
		fail(w, fmt.Errorf("run %s: %w", id, err))
		return
	}
	writeJSON(w, run)
}

// Metrics is a piece of a run's metrics.jsonl: the complete rows from
// Offset on. A row still being written is left for the next request,
// which starts at Next. Reset says the file is no longer the one read
// before (a resumed run truncated it): the rows are the whole file again
// and the page drops what it had.
type Metrics struct {
	Rows   []map[string]any `json:"rows"`
	Next   int64            `json:"next"`
	Size   int64            `json:"size"`
	Reset  bool             `json:"reset"`
	More   bool             `json:"more"`    // the file holds more after Next than one answer carries
	Broken int              `json:"skipped"` // lines that held no row
}

// readMetrics reads name from offset. A resumed run truncates its metrics
// to its checkpoint's step and logs the steps after it again: the file
// shrinks below offset, or the byte before offset is no longer a line's
// end; either way it is read from the start. The page keys rows by step,
// so steps logged twice replace each other.
func (s *Server) readMetrics(name string, offset int64) (Metrics, error) {
	m := Metrics{Rows: []map[string]any{}}
	f, err := s.root.Open(name)
	if err != nil {
		return m, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return m, err
	}
	if !fi.Mode().IsRegular() {
		return m, &httpError{http.StatusForbidden, name + " is not a regular file"}
	}
	m.Size = fi.Size()
	if offset < 0 || offset > m.Size {
		offset, m.Reset = 0, offset > m.Size
	}
	if offset > 0 {
		var b [1]byte
		if _, err := f.ReadAt(b[:], offset-1); err != nil || b[0] != '\n' {
			offset, m.Reset = 0, true
		}
	}
	n := min(m.Size-offset, maxMetricsChunk)
	buf := make([]byte, n)
	if _, err := f.ReadAt(buf, offset); err != nil && !errors.Is(err, io.EOF) {
		return m, err
	}
	rows, used, bad := parseRows(buf, false)
	m.Next = offset + int64(used)
	if used == 0 && n == maxMetricsChunk {
		// One line longer than a whole answer: skipped to its end, not
		// waited for.
		if end, ok := lineEnd(f, offset+n); ok {
			m.Next, bad = end, bad+1
		}
	}
	m.Rows = append(m.Rows, rows...)
	m.Broken = bad
	m.More = m.Next < m.Size && n == maxMetricsChunk
	return m, nil
}

// lineEnd is the offset after the first newline in f from offset on;
// false when the file ends first.
func lineEnd(f *os.File, offset int64) (int64, bool) {
	buf := make([]byte, 64<<10)
	for {
		n, err := f.ReadAt(buf, offset)
		if i := bytes.IndexByte(buf[:n], '\n'); i >= 0 {
			return offset + int64(i) + 1, true
		}
		if err != nil {
			return 0, false
		}
		offset += int64(n)
	}
}

func (s *Server) handleMetrics(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id, err := cleanID(q.Get("id"))
	if err != nil {
		fail(w, err)
		return
	}
	var offset int64
	if o := q.Get("offset"); o != "" {
		if offset, err = strconv.ParseInt(o, 10, 64); err != nil || offset < 0 {
			fail(w, &httpError{http.StatusBadRequest, fmt.Sprintf("offset %q: want a byte offset, 0 or more", o)})
			return
		}
	}
	m, err := s.readMetrics(path.Join(id, "metrics.jsonl"), offset)
	if errors.Is(err, fs.ErrNotExist) {
		writeJSON(w, m) // a run that has logged no step yet
		return
	}
	if err != nil {
		fail(w, err)
		return
	}
	writeJSON(w, m)
}

// handleFile serves a regular file under the runs directory, refusing
// what os.Root refuses (a path out of it, through ".." or a symlink) and
// files larger than MaxFileBytes.
func (s *Server) handleFile(w http.ResponseWriter, r *http.Request) {
	name, err := cleanID(r.PathValue("path"))
	if err != nil {
		fail(w, err)
		return
	}
	f, err := s.root.Open(name)
	if err != nil {
		fail(w, err)
		return
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		fail(w, err)
		return
	}
	if !fi.Mode().IsRegular() {
		fail(w, &httpError{http.StatusForbidden, name + " is not a regular file"})
		return
	}
	if fi.Size() > s.opts.MaxFileBytes {
		fail(w, &httpError{http.StatusRequestEntityTooLarge, fmt.Sprintf("%s is %d bytes, more than the %d served", name, fi.Size(), s.opts.MaxFileBytes)})
		return
	}
	ct := mime.TypeByExtension(path.Ext(name))
	if ct == "" || !strings.HasPrefix(ct, "image/") {
		ct = "text/plain; charset=utf-8" // never HTML or script from a run
	}
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, "", fi.ModTime(), io.NewSectionReader(f, 0, fi.Size()))
}

// readSmall reads a small file under the root (a configuration, a lock).
func (s *Server) readSmall(name string) ([]byte, error) {
	f, err := s.root.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 1<<20))
}
