// Package report draws what a run leaves for a person to look at: the loss
// curve and heat maps of the cross-correlation matrix.
package report

import (
	"fmt"
	"image"
	"image/color"
	"image/png"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// LossCurve plots loss against step into a PNG.
func LossCurve(path, title string, steps []int, losses []float32) error {
	if len(steps) != len(losses) || len(steps) == 0 {
		return fmt.Errorf("report: %d steps and %d losses to plot", len(steps), len(losses))
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "step"
	p.Y.Label.Text = "Barlow Twins loss"
	pts := make(plotter.XYs, len(steps))
	for i := range steps {
		pts[i] = plotter.XY{X: float64(steps[i]), Y: float64(losses[i])}
	}
	line, err := plotter.NewLine(pts)
	if err != nil {
		return err
	}
	line.Color = color.RGBA{R: 30, G: 90, B: 200, A: 255}
	p.Add(line, plotter.NewGrid())
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}

// Heatmap writes a d×d matrix with values in [−1, 1] as a PNG, scale
// pixels per entry: blue for −1, white for 0, red for +1, so the identity
// a trained Barlow Twins cross-correlation approaches is a red diagonal.
func Heatmap(path string, c []float64, d, scale int) error {
	if len(c) != d*d || d < 1 || scale < 1 {
		return fmt.Errorf("report: heat map of %d values as %d×%d", len(c), d, d)
	}
	img := image.NewNRGBA(image.Rect(0, 0, d*scale, d*scale))
	for i := range d {
		for j := range d {
			v := max(-1, min(1, c[i*d+j]))
			var col color.NRGBA
			if v >= 0 {
				f := uint8(255 * (1 - v))
				col = color.NRGBA{255, f, f, 255}
			} else {
				f := uint8(255 * (1 + v))
				col = color.NRGBA{f, f, 255, 255}
			}
			for y := range scale {
				for x := range scale {
					img.SetNRGBA(j*scale+x, i*scale+y, col)
				}
			}
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
