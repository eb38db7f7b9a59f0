package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif"
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"net/http"

	"github.com/bt-org/bt/bt/onnx"
)

// limits bound what one request may ask of the server.
type limits struct {
	Bytes  int64 // request body
	Images int   // images per request
	Pixels int   // pixels per image, checked before decoding
}

// server answers image → embedding requests with one ONNX session.
type server struct {
	s   *onnx.Session
	lim limits
}

// embedRequest is the JSON form of a request: images as base64 of their
// files (PNG, JPEG or GIF), with optional names.
type embedRequest struct {
	Images []string `json:"images"`
	Names  []string `json:"names,omitempty"`
}

// embedding is one image's result: its representation, and the
// projector's embedding when the model has one.
type embedding struct {
	Name           string    `json:"name,omitempty"`
	Representation []float32 `json:"representation"`
	Embedding      []float32 `json:"embedding,omitempty"`
}

type embedResponse struct {
	Model      string      `json:"model"` // the architecture
	Embeddings []embedding `json:"embeddings"`
}

// modelInfo is GET /model's answer: what the model takes and gives.
type modelInfo struct {
	Arch     string    `json:"arch"`
	Size     int       `json:"size"`
	Channels int       `json:"channels"`
	Mean     []float32 `json:"mean"`
	Std      []float32 `json:"std"`
	Outputs  []string  `json:"outputs"`
	Widths   []int     `json:"widths"`
}

func newServer(s *onnx.Session, lim limits) http.Handler {
	sv := &server{s: s, lim: lim}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /embed", sv.embed)
	mux.HandleFunc("GET /model", sv.model)
	return mux
}

func (sv *server) model(w http.ResponseWriter, _ *http.Request) {
	v := sv.s.View
	writeJSON(w, http.StatusOK, modelInfo{Arch: sv.s.Meta[onnx.MetaArch], Size: v.Size, Channels: v.Channels(),
		Mean: v.Mean, Std: v.Std, Outputs: sv.s.Outputs, Widths: sv.s.Widths})
}

// embed takes images uploaded as multipart/form-data (any number of file
// fields named image) or as JSON (embedRequest), and answers JSON.
func (sv *server) embed(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, sv.lim.Bytes)
	files, names, err := sv.read(r)
	if err == nil && len(files) == 0 {
		err = errors.New(`no images: upload files in fields named "image", or send {"images": [base64, ...]}`)
	}
	if err == nil && len(files) > sv.lim.Images {
		err = fmt.Errorf("%d images: at most %d a request", len(files), sv.lim.Images)
	}
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		httpError(w, http.StatusRequestEntityTooLarge, fmt.Errorf("the request is over %d bytes", sv.lim.Bytes))
		return
	}
	if err != nil {
		httpError(w, http.StatusBadRequest, err)
		return
	}
	images := make([]image.Image, len(files))
	for i, b := range files {
		if images[i], err = sv.decode(b); err != nil {
			httpError(w, http.StatusBadRequest, fmt.Errorf("image %d (%s): %w", i, names[i], err))
			return
		}
	}
	outs, err := sv.s.Embed(images)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err)
		return
	}
	res := embedResponse{Model: sv.s.Meta[onnx.MetaArch], Embeddings: make([]embedding, len(images))}
	for i := range images {
		e := &res.Embeddings[i]
		e.Name = names[i]
		for k, name := range sv.s.Outputs {
			switch name {
			case onnx.OutputName:
				e.Representation = outs[k][i]
			case onnx.ProjectorName:
				e.Embedding = outs[k][i]
			}
		}
	}
	writeJSON(w, http.StatusOK, res)
}

// read returns the request's image files and their names.
func (sv *server) read(r *http.Request) (files [][]byte, names []string, err error) {
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		return nil, nil, fmt.Errorf("Content-Type %q: send multipart/form-data or application/json", r.Header.Get("Content-Type"))
	}
	switch ct {
	case "application/json":
		var req embedRequest
		dec := json.NewDecoder(r.Body)
		dec.DisallowUnknownFields()
		if err := dec.Decode(&req); err != nil {
			return nil, nil, fmt.Errorf("the JSON body: %w", err)
		}
		if len(req.Names) > 0 && len(req.Names) != len(req.Images) {
			return nil, nil, fmt.Errorf("%d names for %d images", len(req.Names), len(req.Images))
		}
		for i, s := range req.Images {
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, nil, fmt.Errorf("image %d is not base64: %w", i, err)
			}
			files = append(files, b)
			name := fmt.Sprint(i)
			if len(req.Names) > 0 {
				name = req.Names[i]
			}
			names = append(names, name)
		}
		return files, names, nil
	case "multipart/form-data":
		mr, err := r.MultipartReader()
		if err != nil {
			return nil, nil, err
		}
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return files, names, nil
			}
			if err != nil {
				return nil, nil, err
			}
			if p.FormName() != "image" {
				return nil, nil, fmt.Errorf("field %q: images go in fields named image", p.FormName())
			}
			b, err := io.ReadAll(p)
			if err != nil {
				return nil, nil, err
			}
			files = append(files, b)
			names = append(names, p.FileName())
		}
	}
	return nil, nil, fmt.Errorf("Content-Type %q: send multipart/form-data or application/json", ct)
}

// decode decodes an image file, refusing one of more than lim.Pixels
// pixels before decoding it.
func (sv *server) decode(b []byte) (image.Image, error) {
	cfg, _, err := image.DecodeConfig(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("not a PNG, JPEG or GIF image: %w", err)
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > sv.lim.Pixels/max(cfg.Height, 1) {
		return nil, fmt.Errorf("%d×%d pixels: at most %d", cfg.Width, cfg.Height, sv.lim.Pixels)
	}
	img, _, err := image.Decode(bytes.NewReader(b))
	return img, err
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func httpError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, map[string]string{"error": err.Error()})
}
