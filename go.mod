module github.com/bt-org/bt

go 1.26.8

require (
	github.com/disintegration/imaging v1.6.2
	github.com/go-gl/mathgl v1.2.0
	github.com/gofrs/flock v0.13.2
	github.com/nlpodyssey/safetensors v0.0.0-20250209183917-bfb01cc25f7c
	// WebGPU through go-webgpu's maintained continuation (by way of
	// cogentcore/webgpu): rajveermalviya/go-webgpu stopped at wgpu-native
	// 0.17, which aborted the process on validation errors, gave up blocking
	// waits after five seconds and hid the timestamp period. This one wraps
	// wgpu-native 29, returns those errors from its Try… calls, and pulls the
	// static libraries in from its libs-<platform> modules.
	github.com/oliverbestmann/webgpu v1.36.0
	github.com/schollz/progressbar/v3 v3.19.1
	golang.org/x/image v0.41.0
	golang.org/x/sys v0.50.0
	golang.org/x/term v0.48.0
	gonum.org/v1/gonum v0.17.0
	gonum.org/v1/plot v0.17.0
)

require (
	cogentcore.org/lab v0.1.18
	github.com/chromedp/chromedp v0.24.0
	github.com/x448/float16 v0.8.4
)

require (
	// ONNX Runtime's C API, opened at run time (bt/onnx): v1.38.0 is built
	// against ONNX Runtime 1.31, whose library the npm package
	// onnxruntime-node 1.31.1 ships (scripts/setup.sh).
	github.com/yalue/onnxruntime_go v1.38.0
	// Serialises the ONNX models bt export writes (internal/onnxpb).
	google.golang.org/protobuf v1.36.11
)

require (
	codeberg.org/go-fonts/liberation v0.5.0 // indirect
	codeberg.org/go-latex/latex v0.2.0 // indirect
	codeberg.org/go-pdf/fpdf v0.11.1 // indirect
	git.sr.ht/~sbinet/gg v0.7.0 // indirect
	github.com/ajstarks/svgo v0.0.0-20211024235047-1546f124cd8b // indirect
	github.com/chromedp/cdproto v0.160.1 // indirect
	github.com/go-json-experiment/json v0.0.0-20260213210345-44df1a37e875 // indirect
	github.com/golang/freetype v0.0.0-20170609003504-e2365dfdc4a0 // indirect
	github.com/mitchellh/colorstring v0.0.0-20190213212951-d06e56a500db // indirect
	github.com/oliverbestmann/webgpu/libs-android v0.0.0-20260628152806-6b27e30a172e // indirect
	github.com/oliverbestmann/webgpu/libs-darwin v0.0.0-20260628152755-66a5dfa57f8d // indirect
	github.com/oliverbestmann/webgpu/libs-ios v0.0.0-20260628152757-fe2537e7ddac // indirect
	github.com/oliverbestmann/webgpu/libs-linux v0.0.0-20260628152803-421b8a341d08 // indirect
	github.com/oliverbestmann/webgpu/libs-windows v0.0.0-20260628152801-f47d1b682eb8 // indirect
	github.com/rivo/uniseg v0.4.7 // indirect
	golang.org/x/text v0.37.0 // indirect
)
