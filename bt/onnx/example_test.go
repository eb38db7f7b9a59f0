package onnx_test

import (
	"fmt"
	"image"
	"log"

	"github.com/bt-org/bt/bt/onnx"
	"github.com/bt-org/bt/bt/train"
)

// A checkpoint of bt pretrain becomes an ONNX model, which ONNX Runtime
// runs on the CPU with the preprocessing its metadata records.
func Example() {
	c, err := train.LoadCheckpoint("runs/demo/checkpoint.safetensors")
	if err != nil {
		log.Fatal(err)
	}
	if err := onnx.Write("backbone.onnx", c, onnx.Options{}); err != nil {
		log.Fatal(err)
	}

	s, err := onnx.Open("backbone.onnx", onnx.SessionOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer s.Close()
	var images []image.Image // decoded as the program likes
	z, err := s.Embed(images)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(len(z[0]), "representations of", s.Widths[0], "values")
}
