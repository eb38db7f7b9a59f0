package ref

// ConvShape mirrors gpu.ConvShape: N images of Cin×H×W, Cout filters of
// KH×KW, stride and zero padding; all tensors NCHW.
type ConvShape struct {
	N, Cin, H, W int
	Cout, KH, KW int
	Stride, Pad  int
}

// Out is the output height and width.
func (s ConvShape) Out() (int, int) {
	return (s.H+2*s.Pad-s.KH)/s.Stride + 1, (s.W+2*s.Pad-s.KW)/s.Stride + 1
}

// each calls f for every (output, input, weight) index triple of the
// convolution that multiplies inside the input.
func (s ConvShape) each(f func(o, i, w int)) {
	oh, ow := s.Out()
	for n := range s.N {
		for co := range s.Cout {
			for y := range oh {
				for x := range ow {
					o := ((n*s.Cout+co)*oh+y)*ow + x
					for ci := range s.Cin {
						for ky := range s.KH {
							for kx := range s.KW {
								iy, ix := y*s.Stride-s.Pad+ky, x*s.Stride-s.Pad+kx
								if iy < 0 || ix < 0 || iy >= s.H || ix >= s.W {
									continue
								}
								f(o, ((n*s.Cin+ci)*s.H+iy)*s.W+ix, ((co*s.Cin+ci)*s.KH+ky)*s.KW+kx)
							}
						}
					}
				}
			}
		}
	}
}

// ConvForward returns conv(x, w) + bias (bias may be nil).
func ConvForward(s ConvShape, x, w, bias []float64) []float64 {
	oh, ow := s.Out()
	out := make([]float64, s.N*s.Cout*oh*ow)
	s.each(func(o, i, k int) { out[o] += x[i] * w[k] })
	if bias != nil {
		for o := range out {
			out[o] += bias[(o/(oh*ow))%s.Cout]
		}
	}
	return out
}

// ConvBackward returns the gradients of x, w and bias (nil when bias is
// nil) given dy.
func ConvBackward(s ConvShape, x, w, bias, dy []float64) (dx, dw, db []float64) {
	oh, ow := s.Out()
	dx, dw = make([]float64, len(x)), make([]float64, len(w))
	s.each(func(o, i, k int) {
		dx[i] += dy[o] * w[k]
		dw[k] += dy[o] * x[i]
	})
	if bias != nil {
		db = make([]float64, len(bias))
		for o, g := range dy {
			db[(o/(oh*ow))%s.Cout] += g
		}
	}
	return dx, dw, db
}
