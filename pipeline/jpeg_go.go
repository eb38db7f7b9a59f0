//go:build !cgo || nolibjpeg

package pipeline

// JPEGDecoder names the JPEG decoder this build uses: the standard library's
// where cgo is off or the build has the nolibjpeg tag (no libjpeg-turbo on
// the machine).
const JPEGDecoder = "image/jpeg"

// fastJPEG declines every file, leaving JPEGs to image/jpeg.
func fastJPEG([]byte, int, *Image8) bool { return false }
