package gpu_test

import (
	"fmt"
	"log"

	"github.com/bt-org/bt/gpu"
)

// The main path: open the best adapter, put tensors on it, record kernels
// into one submission, and read the result back.
func Example() {
	d, err := gpu.Open(gpu.Options{})
	if err != nil {
		log.Fatal(err) // names what is missing, e.g. a Vulkan driver
	}
	defer d.Release()
	a, err := d.FromSlice([]float32{1, 2, 3, 4, 5, 6}, 2, 3)
	if err != nil {
		log.Fatal(err)
	}
	defer a.Release()
	b, err := d.FromSlice([]float32{1, 0, 0, 1, 1, 1}, 3, 2)
	if err != nil {
		log.Fatal(err)
	}
	defer b.Release()
	c, err := d.NewTensor(2, 2)
	if err != nil {
		log.Fatal(err)
	}
	defer c.Release()
	// y = max(a·b − 5, 0): a GEMM, an add and a ReLU in place, recorded
	// into one submission.
	five, err := d.FromSlice([]float32{-5, -5, -5, -5}, 2, 2)
	if err != nil {
		log.Fatal(err)
	}
	defer five.Release()
	y, err := d.NewTensor(2, 2)
	if err != nil {
		log.Fatal(err)
	}
	defer y.Release()
	err = d.Run(func(r *gpu.Recorder) error {
		if err := gpu.Gemm(r, c, a, b, gpu.GemmOp{M: 2, N: 2, K: 3, Alpha: 1}); err != nil {
			return err
		}
		if err := gpu.Add(r, y, c, five); err != nil {
			return err
		}
		return gpu.ReLU(r, y, y)
	})
	if err != nil {
		log.Fatal(err)
	}
	v, err := y.Download()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(v)
	// Output: [0 0 5 6]
}
