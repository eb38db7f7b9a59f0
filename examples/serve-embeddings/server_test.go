package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"image"
	"image/color"
	"image/png"
	"math"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bt-org/bt/bt/encoder"
	"github.com/bt-org/bt/bt/onnx"
	"github.com/bt-org/bt/bt/train"
	"github.com/bt-org/bt/internal/gputest"
)

// fixture is a served tiny ResNet with its projector, the checkpoint it
// came from and two PNG files.
type fixture struct {
	srv   *httptest.Server
	ckpt  string
	files [][]byte
}

func setup(t *testing.T, lim limits) fixture {
	t.Helper()
	if _, err := onnx.LibraryPath(); errors.Is(err, onnx.ErrNoRuntime) {
		t.Skipf("ONNX Runtime is not installed: %v", err)
	}
	d := gputest.Device(t)
	cfg := train.DefaultConfig()
	cfg.Data.Name, cfg.Model.Projector = "synthetic", "32-16"
	rc, err := cfg.Resolve()
	if err != nil {
		t.Fatal(err)
	}
	cfg = rc.Config()
	m, err := train.NewModel(d, cfg.Model)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Release()
	dir := t.TempDir()
	f := fixture{ckpt: filepath.Join(dir, "checkpoint.safetensors")}
	if err := train.SaveCheckpoint(f.ckpt, m, nil, train.RunState{Config: cfg}); err != nil {
		t.Fatal(err)
	}
	c, err := train.LoadCheckpoint(f.ckpt)
	if err != nil {
		t.Fatal(err)
	}
	model := filepath.Join(dir, "model.onnx")
	if err := onnx.Write(model, c, onnx.Options{Projector: true}); err != nil {
		t.Fatal(err)
	}
	s, err := onnx.Open(model, onnx.SessionOptions{Threads: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	f.srv = httptest.NewServer(newServer(s, lim))
	t.Cleanup(f.srv.Close)
	for i, size := range [][2]int{{40, 30}, {33, 57}} {
		img := image.NewNRGBA(image.Rect(0, 0, size[0], size[1]))
		for y := range size[1] {
			for x := range size[0] {
				img.SetNRGBA(x, y, color.NRGBA{uint8(7 * x), uint8(11*y + 50*i), uint8(x * y), 255})
			}
		}
		var b bytes.Buffer
		if err := png.Encode(&b, img); err != nil {
			t.Fatal(err)
		}
		f.files = append(f.files, b.Bytes())
	}
	return f
}

func multipartBody(t testing.TB, field string, files ...[]byte) (string, *bytes.Buffer) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for i, f := range files {
		w, err := mw.CreateFormFile(field, "file"+string(rune('a'+i))+".png")
		if err != nil {
			t.Fatal(err)
		}
		w.Write(f)
	}
	mw.Close()
	return mw.FormDataContentType(), &b
}

func post(t *testing.T, url, ct string, body *bytes.Buffer) (int, []byte) {
	t.Helper()
	resp, err := http.Post(url, ct, body)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out bytes.Buffer
	out.ReadFrom(resp.Body)
	return resp.StatusCode, out.Bytes()
}

// TestEmbed: images uploaded as files or sent as JSON come back as bt's
// encoder embeds them, representation and projector embedding, in order.
func TestEmbed(t *testing.T) {
	f := setup(t, limits{Bytes: 1 << 20, Images: 4, Pixels: 10_000})
	ct, body := multipartBody(t, "image", f.files...)
	code, raw := post(t, f.srv.URL+"/embed", ct, body)
	if code != http.StatusOK {
		t.Fatalf("upload: %d %s", code, raw)
	}
	var up embedResponse
	if err := json.Unmarshal(raw, &up); err != nil {
		t.Fatal(err)
	}
	js, _ := json.Marshal(embedRequest{Images: []string{base64.StdEncoding.EncodeToString(f.files[0]), base64.StdEncoding.EncodeToString(f.files[1])}, Names: []string{"a", "b"}})
	code, raw = post(t, f.srv.URL+"/embed", "application/json", bytes.NewBuffer(js))
	if code != http.StatusOK {
		t.Fatalf("JSON: %d %s", code, raw)
	}
	var viaJSON embedResponse
	if err := json.Unmarshal(raw, &viaJSON); err != nil {
		t.Fatal(err)
	}

	d := gputest.Device(t)
	enc, err := encoder.Load(d, f.ckpt)
	if err != nil {
		t.Fatal(err)
	}
	defer enc.Release()
	var images []image.Image
	for _, b := range f.files {
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil {
			t.Fatal(err)
		}
		images = append(images, img)
	}
	want, err := enc.Embed(images)
	if err != nil {
		t.Fatal(err)
	}
	for name, res := range map[string]embedResponse{"upload": up, "JSON": viaJSON} {
		if res.Model != "tiny" || len(res.Embeddings) != len(want) {
			t.Fatalf("%s: model %q, %d embeddings; want tiny and %d", name, res.Model, len(res.Embeddings), len(want))
		}
		for i, e := range res.Embeddings {
			if len(e.Embedding) != 16 {
				t.Errorf("%s image %d: embedding of %d values, want the projector's 16", name, i, len(e.Embedding))
			}
			if len(e.Representation) != len(want[i]) {
				t.Fatalf("%s image %d: %d values, want %d", name, i, len(e.Representation), len(want[i]))
			}
			var diff, norm float64
			for j, w := range want[i] {
				diff += math.Pow(float64(e.Representation[j]-w), 2)
				norm += float64(w) * float64(w)
			}
			if rel := math.Sqrt(diff / norm); !(rel < 1e-4) {
				t.Errorf("%s image %d: relative difference %.2g from bt's encoder", name, i, rel)
			}
		}
	}
	if up.Embeddings[1].Name != "fileb.png" || viaJSON.Embeddings[1].Name != "b" {
		t.Errorf("names %q and %q, want fileb.png and b", up.Embeddings[1].Name, viaJSON.Embeddings[1].Name)
	}
}

// TestRefuses: every bad request is answered with its status and an error
// saying why; nothing but /embed and /model is served.
func TestRefuses(t *testing.T) {
	f := setup(t, limits{Bytes: 60000, Images: 2, Pixels: 2000})
	big := image.NewGray(image.Rect(0, 0, 50, 50))
	var bigPNG bytes.Buffer
	png.Encode(&bigPNG, big)
	for _, tc := range []struct {
		name string
		ct   string
		body func() (string, *bytes.Buffer)
		code int
		want string
	}{
		{"no images", "", func() (string, *bytes.Buffer) { return multipartBody(t, "image") }, 400, "no images"},
		{"too many", "", func() (string, *bytes.Buffer) { return multipartBody(t, "image", f.files[0], f.files[1], f.files[0]) }, 400, "at most 2"},
		{"other field", "", func() (string, *bytes.Buffer) { return multipartBody(t, "photo", f.files[0]) }, 400, `fields named image`},
		{"not an image", "", func() (string, *bytes.Buffer) { return multipartBody(t, "image", []byte("hello")) }, 400, "not a PNG"},
		{"too many pixels", "", func() (string, *bytes.Buffer) { return multipartBody(t, "image", bigPNG.Bytes()) }, 400, "50×50 pixels"},
		{"too large", "", func() (string, *bytes.Buffer) {
			return multipartBody(t, "image", bytes.Repeat([]byte{1}, 70000))
		}, 413, "over 60000 bytes"},
		{"text", "text/plain", func() (string, *bytes.Buffer) { return "", bytes.NewBufferString("x") }, 400, "Content-Type"},
		{"bad base64", "application/json", func() (string, *bytes.Buffer) { return "", bytes.NewBufferString(`{"images": ["%%%"]}`) }, 400, "not base64"},
		{"unknown JSON field", "application/json", func() (string, *bytes.Buffer) { return "", bytes.NewBufferString(`{"imgs": []}`) }, 400, "unknown field"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ct, body := tc.body()
			if tc.ct != "" {
				ct = tc.ct
			}
			code, raw := post(t, f.srv.URL+"/embed", ct, body)
			if code != tc.code || !strings.Contains(string(raw), tc.want) {
				t.Errorf("got %d %s, want %d saying %q", code, raw, tc.code, tc.want)
			}
		})
	}
	for path, code := range map[string]int{"/embed": http.StatusMethodNotAllowed, "/": http.StatusNotFound, "/model.onnx": http.StatusNotFound, "/../model.onnx": http.StatusNotFound} {
		resp, err := http.Get(f.srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != code {
			t.Errorf("GET %s: %d, want %d", path, resp.StatusCode, code)
		}
	}
	resp, err := http.Get(f.srv.URL + "/model")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var info modelInfo
	if err := json.NewDecoder(resp.Body).Decode(&info); err != nil {
		t.Fatal(err)
	}
	if info.Arch != "tiny" || info.Size != 32 || info.Channels != 3 || len(info.Outputs) != 2 || info.Widths[1] != 16 {
		t.Errorf("GET /model: %+v, want tiny, 32 px, 3 channels and two outputs, the second 16 wide", info)
	}
}
