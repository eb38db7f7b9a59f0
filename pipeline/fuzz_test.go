package pipeline

import (
	"bytes"
	"errors"
	"testing"
)

// The seed corpora in testdata/fuzz run with every go test; go test -fuzz
// explores further.

func FuzzReadIDX(f *testing.F) {
	f.Add(idxBytes([]int{2, 3, 3}, make([]byte, 18)))
	f.Add(gz(idxBytes([]int{4}, []byte{0, 1, 2, 9})))
	f.Fuzz(func(t *testing.T, data []byte) {
		dims, pix, err := readIDX(bytes.NewReader(data), "fuzz")
		if err != nil {
			var fe *FormatError
			if !errors.As(err, &fe) || fe.File != "fuzz" || fe.Expected == "" || fe.Got == "" {
				t.Fatalf("error %v is not a complete FormatError", err)
			}
			return
		}
		total := 1
		for _, d := range dims {
			total *= d
		}
		if len(dims) == 0 || total != len(pix) {
			t.Fatalf("dims %v but %d data bytes", dims, len(pix))
		}
		if data[0] != 0x1f && !bytes.Equal(idxBytes(dims, pix), data) {
			t.Fatal("accepted raw input does not re-encode to itself")
		}
	})
}

func FuzzParseCIFAR(f *testing.F) {
	f.Add(cifarRecords(2, 10))
	f.Add(cifarRecords(1, 100))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, classes := range []int{10, 100} {
			pix, labels, err := parseCIFAR(data, "fuzz", classes)
			if err != nil {
				var fe *FormatError
				if !errors.As(err, &fe) || fe.File != "fuzz" || fe.Offset < 0 || fe.Offset > int64(len(data)) {
					t.Fatalf("error %v is not a FormatError within the file", err)
				}
				continue
			}
			head := 1
			if classes == 100 {
				head = 2
			}
			if len(pix) != len(labels)*cifarPixels || len(data) != len(labels)*(head+cifarPixels) {
				t.Fatalf("%d labels, %d pixel bytes from %d bytes", len(labels), len(pix), len(data))
			}
			for i, l := range labels {
				if int(l) >= classes {
					t.Fatalf("label %d of record %d accepted with %d classes", l, i, classes)
				}
			}
		}
	})
}
