// Command serve-embeddings is an HTTP service that embeds images with a
// backbone exported by bt export -format onnx, on the CPU through ONNX
// Runtime: no GPU, no WebGPU, no Python.
//
//	bt export -checkpoint runs/demo/checkpoint.safetensors -format onnx -out backbone.onnx
//	serve-embeddings -model backbone.onnx
//	curl -F image=@cat.png -F image=@dog.jpg http://127.0.0.1:8080/embed
//
// POST /embed takes images uploaded as multipart/form-data (fields named
// image) or JSON ({"images": [base64 of each file], "names": [...]}) and
// answers {"model": ARCH, "embeddings": [{"name", "representation",
// "embedding"}]} (embedding only from an export with -with-projector).
// Each image is preprocessed as the model's metadata records (resize,
// centre crop, normalisation), as bt eval embed does. GET /model describes
// the model. Nothing else is served. It listens on the loopback interface
// unless -addr says otherwise.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/bt-org/bt/bt/onnx"
)

func main() {
	model := flag.String("model", "", "ONNX model from bt export -format onnx")
	addr := flag.String("addr", "127.0.0.1:8080", "address to listen on (loopback by default)")
	threads := flag.Int("threads", 0, "threads per inference (0: one per core)")
	maxImages := flag.Int("max-images", 64, "images per request at most")
	maxBytes := flag.Int64("max-bytes", 32<<20, "request body size at most, in bytes")
	maxPixels := flag.Int("max-pixels", 40_000_000, "pixels per image at most (checked before decoding)")
	flag.Parse()
	if err := run(*model, *addr, *threads, limits{Bytes: *maxBytes, Images: *maxImages, Pixels: *maxPixels}); err != nil {
		fmt.Fprintln(os.Stderr, "serve-embeddings:", err)
		os.Exit(1)
	}
}

func run(model, addr string, threads int, lim limits) error {
	switch {
	case flag.NArg() > 0:
		return fmt.Errorf("unexpected arguments %q: give the model with -model", flag.Args())
	case model == "":
		return fmt.Errorf("give -model, a file written by bt export -format onnx")
	case lim.Bytes < 1 || lim.Images < 1 || lim.Pixels < 1:
		return fmt.Errorf("-max-bytes, -max-images and -max-pixels must be positive")
	}
	s, err := onnx.Open(model, onnx.SessionOptions{Threads: threads})
	if err != nil {
		return err
	}
	defer s.Close()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	log.Printf("serving %s (%s, %d px, %d channels) on http://%s", model, s.Meta[onnx.MetaArch], s.View.Size, s.View.Channels(), ln.Addr())
	srv := &http.Server{Handler: newServer(s, lim), ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}
