// Command embed prints each image's path and its representation by a
// backbone from bt pretrain or bt export: embed CHECKPOINT IMAGE...
package main

import (
	"fmt"
	"image"
	"log"
	"os"
	"strings"

	"github.com/bt-org/bt/bt/encoder"
	"github.com/bt-org/bt/gpu"
	"github.com/disintegration/imaging"
)

func main() {
	if len(os.Args) < 3 {
		log.Fatal("usage: embed CHECKPOINT IMAGE...")
	}
	d := must(gpu.Open(gpu.Options{}))
	defer d.Release()
	enc := must(encoder.Load(d, os.Args[1])) // with its preprocessing
	defer enc.Release()
	var images []image.Image
	for _, path := range os.Args[2:] {
		images = append(images, must(imaging.Open(path, imaging.AutoOrientation(true))))
	}
	for i, row := range must(enc.Embed(images)) {
		fmt.Println(os.Args[2+i], strings.Trim(fmt.Sprint(row), "[]"))
	}
}

// must stops the program on err, whose message names what failed.
func must[T any](v T, err error) T {
	if err != nil {
		log.Fatal(err)
	}
	return v
}
