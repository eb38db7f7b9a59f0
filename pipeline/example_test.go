package pipeline_test

import (
	"fmt"
	"io"
	"log"

	"github.com/bt-org/bt/pipeline"
)

func ExampleNewLoader() {
	ds, err := pipeline.NewSynthetic(pipeline.SyntheticConfig{Count: 100, Size: 32, Channels: 3, Classes: 10, Seed: 1})
	if err != nil {
		log.Fatal(err)
	}
	aug, err := pipeline.Preset("cifar")
	if err != nil {
		log.Fatal(err)
	}
	l, err := pipeline.NewLoader(ds, aug, pipeline.LoaderConfig{BatchSize: 32, Seed: 42, Shuffle: true, DropLast: true, Epochs: 1})
	if err != nil {
		log.Fatal(err)
	}
	defer l.Close()
	for {
		b, err := l.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("epoch %d step %d: A and B are [%d, %d, %d, %d], %d floats each\n", b.Epoch, b.Step, b.N, b.C, b.H, b.W, len(b.A))
		l.Recycle(b) // done with it: let a worker refill it
	}
	// Output:
	// epoch 0 step 0: A and B are [32, 3, 32, 32], 98304 floats each
	// epoch 0 step 1: A and B are [32, 3, 32, 32], 98304 floats each
	// epoch 0 step 2: A and B are [32, 3, 32, 32], 98304 floats each
}

func ExamplePreset() {
	c, err := pipeline.Preset("imagenet")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("size %d, %v crop scale %v, blur %.1f/%.1f (kernel %d), solarize %.1f/%.1f\n",
		c.A.Size, c.A.Filter, c.A.Scale, c.A.BlurP, c.B.BlurP, c.A.KernelSize(), c.A.SolarizeP, c.B.SolarizeP)
	// Output:
	// size 224, bicubic crop scale [0.08 1], blur 1.0/0.1 (kernel 23), solarize 0.0/0.2
}

func ExampleOpen() {
	ds, err := pipeline.Open("synthetic", "", "test")
	if err != nil {
		log.Fatal(err)
	}
	h, w := ds.Size()
	fmt.Println(ds.Len(), ds.Channels(), h, w, ds.ClassNames()[:3])
	// Output:
	// 2000 3 32 32 [circle square triangle]
}
