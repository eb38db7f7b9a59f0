package pipeline

import (
	"fmt"
	"io"
)

// FormatError reports malformed dataset bytes: which file, where, what the
// reader expected and what it found.
type FormatError struct {
	File     string
	Offset   int64 // byte offset; of the decompressed stream when Gzip
	Gzip     bool
	Expected string
	Got      string
}

func (e *FormatError) Error() string {
	where := fmt.Sprintf("offset %d", e.Offset)
	if e.Gzip {
		where += " (decompressed)"
	}
	return fmt.Sprintf("pipeline: %s: %s: expected %s, got %s", e.File, where, e.Expected, e.Got)
}

// countingReader tracks the offset for FormatError.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
