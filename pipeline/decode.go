package pipeline

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"image"
	"slices"
)

// Scales are the reductions a decoder applies for LoadScaled: libjpeg's
// DCT-domain scaling factors 1/1, 1/2, 1/4 and 1/8, the ones with fast
// inverse DCTs.
var Scales = []int{1, 2, 4, 8}

// scaleFor is the largest reduction in Scales that leaves every view's crop
// (params[v].Crop, in full-resolution pixels) at least the view's output
// size in both directions. The resize that follows then still shrinks or
// keeps the image, with its antialiasing filter, so quality is that of
// resizing from full resolution up to the decoder's rounding. One decode
// serves both views, so the view needing most pixels decides.
func scaleFor(params []Params, views []ViewConfig) int {
	best := 1
	for _, d := range Scales {
		ok := true
		for v := range params {
			s, b := float32(views[v].Size*d), params[v].Crop
			ok = ok && b.W >= s && b.H >= s
		}
		if ok {
			best = d
		}
	}
	return best
}

// Scaled returns the box in the coordinates of an image decoded at
// 1/denom: scaled pixel k covers full-resolution pixels [k·denom,
// (k+1)·denom), so every coordinate divides by denom.
func (b Box) Scaled(denom int) Box {
	f := 1 / float32(denom)
	return Box{b.X * f, b.Y * f, b.W * f, b.H * f}
}

// ImageHeader is what a file's header says about the image: its size as
// displayed, after EXIF orientation, the orientation itself and the format
// ("jpeg", "png", … as image.DecodeConfig names it).
type ImageHeader struct {
	H, W        int
	Orientation int // EXIF orientation 1–8
	Format      string
}

// readHeader reads the displayed size of an encoded image without decoding
// its pixels; the draw of the random crop needs only this, so it happens
// before decoding and does not depend on which decoder runs.
func readHeader(data []byte) (ImageHeader, error) {
	cfg, format, err := image.DecodeConfig(bytes.NewReader(data))
	if err != nil {
		return ImageHeader{}, err
	}
	h := ImageHeader{H: cfg.Height, W: cfg.Width, Orientation: exifOrientation(data), Format: format}
	if h.Orientation >= 5 {
		h.H, h.W = h.W, h.H
	}
	return h, nil
}

// decodeScaled decodes data at 1/denom into dst as 8-bit RGB, oriented as
// the header says. libjpeg-turbo decodes JPEGs where the build has it
// (fastJPEG); every other file, and any JPEG it declines, goes through the
// standard decoders followed by a block mean, so both paths give the same
// image up to decoder rounding. tmp is scratch space.
func decodeScaled(data []byte, hdr ImageHeader, denom int, dst, tmp *Image8) error {
	if !slices.Contains(Scales, denom) {
		return fmt.Errorf("scale 1/%d is not one of 1/%v", denom, Scales)
	}
	into := dst
	if hdr.Orientation > 1 {
		into = tmp
	}
	if !fastJPEG(data, denom, into) {
		img, _, err := image.Decode(bytes.NewReader(data))
		if err != nil {
			return err
		}
		if img.Bounds().Empty() {
			return errors.New("empty image")
		}
		if denom == 1 {
			into.fromDecoded(img)
		} else {
			var full Image8
			full.fromDecoded(img)
			full.reduce(into, denom)
		}
	}
	if hdr.Orientation > 1 {
		tmp.orient(dst, hdr.Orientation)
	}
	return nil
}

// exifOrientation finds the EXIF orientation tag of a JPEG, 1 when there is
// none. It follows imaging.AutoOrientation's reading (the first APP1
// segment, IFD0 only), so the pure-Go Load and the scaled path orient every
// file alike.
func exifOrientation(data []byte) int {
	const app1 = 0xffe1
	if len(data) < 4 || binary.BigEndian.Uint16(data) != 0xffd8 {
		return 1
	}
	p := 2
	for {
		if p+4 > len(data) {
			return 1
		}
		marker, size := binary.BigEndian.Uint16(data[p:]), int(binary.BigEndian.Uint16(data[p+2:]))
		if marker>>8 != 0xff {
			return 1
		}
		if marker == app1 {
			break
		}
		if size < 2 {
			return 1
		}
		p += 2 + size
	}
	exif := data[p+4:]
	if len(exif) < 14 || string(exif[:4]) != "Exif" {
		return 1
	}
	tiff := exif[6:]
	var order binary.ByteOrder
	switch string(tiff[:2]) {
	case "MM":
		order = binary.BigEndian
	case "II":
		order = binary.LittleEndian
	default:
		return 1
	}
	off := order.Uint32(tiff[4:])
	if off < 8 || uint64(off)+2 > uint64(len(tiff)) {
		return 1
	}
	n := int(order.Uint16(tiff[off:]))
	q := int(off) + 2
	for range n {
		if q+12 > len(tiff) {
			return 1
		}
		if order.Uint16(tiff[q:]) == 0x0112 {
			v := int(order.Uint16(tiff[q+8:]))
			if v < 1 || v > 8 {
				return 1
			}
			return v
		}
		q += 12
	}
	return 1
}
