module github.com/bt-org/bt

go 1.26.8

require (
	github.com/disintegration/imaging v1.6.2
	github.com/go-gl/mathgl v1.2.0
	github.com/rajveermalviya/go-webgpu/wgpu v0.17.1
	golang.org/x/image v0.25.0
	gonum.org/v1/gonum v0.17.0
)

require github.com/nlpodyssey/safetensors v0.0.0-20250209183917-bfb01cc25f7c // indirect
