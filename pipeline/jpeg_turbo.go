//go:build cgo && !nolibjpeg

package pipeline

// libjpeg-turbo through a few lines of cgo rather than a binding module:
// pixiv/go-libjpeg and viam-labs/go-libjpeg are not served by the module
// proxy bt builds from, and govips would bring libvips, its dependency
// tree, its own thread pool and cache, and a copy out of its pipeline, where
// one worker goroutine per core should own one decode. The part of
// libjpeg's API used here (header, scale, colour space, scanlines, an
// error handler that returns instead of exiting) has been stable for
// decades.

/*
#cgo LDFLAGS: -ljpeg
#include <stdio.h>
#include <setjmp.h>
#include <jpeglib.h>

typedef struct {
	struct jpeg_error_mgr pub;
	jmp_buf jump;
} bt_error;

// libjpeg's default error_exit calls exit(); jump back to bt_decode instead,
// whose caller falls back to the standard decoder for the error message.
static void bt_error_exit(j_common_ptr c) {
	longjmp(((bt_error *)c->err)->jump, 1);
}

// Warnings (corrupt data libjpeg decodes anyway) are counted, not printed.
static void bt_output_message(j_common_ptr c) {}

enum { BT_OK, BT_ERROR, BT_GROW, BT_DECLINE };

// bt_decode decodes a JPEG at 1/denom into out as RGB. It returns BT_GROW
// with *w and *h set when cap is too small, and BT_DECLINE for what the
// caller's fallback decoder should handle: CMYK images (libjpeg does not
// convert them to RGB) and files with warnings (the standard decoder
// rejects what it rejects, so both builds skip the same files).
static int bt_decode(const unsigned char *data, unsigned long n, int denom,
                     unsigned char *out, size_t cap, int *w, int *h) {
	struct jpeg_decompress_struct d;
	bt_error e;
	d.err = jpeg_std_error(&e.pub);
	e.pub.error_exit = bt_error_exit;
	e.pub.output_message = bt_output_message;
	if (setjmp(e.jump)) {
		jpeg_destroy_decompress(&d);
		return BT_ERROR;
	}
	jpeg_create_decompress(&d);
	jpeg_mem_src(&d, data, n);
	jpeg_read_header(&d, TRUE);
	if (d.jpeg_color_space == JCS_CMYK || d.jpeg_color_space == JCS_YCCK) {
		jpeg_destroy_decompress(&d);
		return BT_DECLINE;
	}
	d.scale_num = 1;
	d.scale_denom = denom;
	d.out_color_space = JCS_RGB;
	// Chroma by replication, as image/jpeg's YCbCr image defines it, so the
	// two decoders differ by rounding rather than by an upsampling filter.
	d.do_fancy_upsampling = FALSE;
	d.dct_method = JDCT_ISLOW;
	jpeg_calc_output_dimensions(&d);
	*w = d.output_width;
	*h = d.output_height;
	if ((size_t)d.output_width * d.output_height * 3 > cap) {
		jpeg_destroy_decompress(&d);
		return BT_GROW;
	}
	jpeg_start_decompress(&d);
	size_t stride = (size_t)d.output_width * 3;
	while (d.output_scanline < d.output_height) {
		JSAMPROW row = out + d.output_scanline * stride;
		jpeg_read_scanlines(&d, &row, 1);
	}
	jpeg_finish_decompress(&d);
	int warned = e.pub.num_warnings > 0;
	jpeg_destroy_decompress(&d);
	return warned ? BT_DECLINE : BT_OK;
}
*/
import "C"

import "unsafe"

// JPEGDecoder names the JPEG decoder this build uses.
const JPEGDecoder = "libjpeg-turbo"

// fastJPEG decodes a JPEG with libjpeg-turbo at 1/denom into dst. It
// reports false for data that is not a JPEG, that libjpeg declines or that
// it fails on: the caller then decodes with the standard decoders, so a
// broken file fails with the same error in both builds.
func fastJPEG(data []byte, denom int, dst *Image8) bool {
	if len(data) < 3 || data[0] != 0xff || data[1] != 0xd8 {
		return false
	}
	for {
		var w, h C.int
		var out *C.uchar
		if cap(dst.Pix) > 0 {
			out = (*C.uchar)(unsafe.Pointer(&dst.Pix[:1][0]))
		}
		rc := C.bt_decode((*C.uchar)(unsafe.Pointer(&data[0])), C.ulong(len(data)), C.int(denom),
			out, C.size_t(cap(dst.Pix)), &w, &h)
		switch rc {
		case C.BT_OK:
			dst.Resize(3, int(h), int(w))
			return true
		case C.BT_GROW:
			dst.Resize(3, int(h), int(w))
		default:
			return false
		}
	}
}
