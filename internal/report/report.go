// Package report draws what a run leaves for a person to look at: the loss
// curves (loss, learning rate, kNN accuracy) and heat maps of the
// cross-correlation matrix.
package report

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/palette/moreland"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// Series is one line of a Curves plot.
type Series struct {
	Name string
	X, Y []float64
}

// Curves plots series against a shared x axis into a PNG: the loss, the
// learning rates and the kNN accuracy of a run.
func Curves(path, title, xLabel, yLabel string, series ...Series) error {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xLabel
	p.Y.Label.Text = yLabel
	p.Add(plotter.NewGrid())
	colors := []color.RGBA{{30, 90, 200, 255}, {200, 60, 40, 255}, {40, 150, 60, 255}}
	for i, s := range series {
		if len(s.X) != len(s.Y) || len(s.X) == 0 {
			return fmt.Errorf("report: %s: %d x and %d y values to plot", s.Name, len(s.X), len(s.Y))
		}
		pts := make(plotter.XYs, len(s.X))
		for j := range s.X {
			pts[j] = plotter.XY{X: s.X[j], Y: s.Y[j]}
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return err
		}
		line.Color = colors[i%len(colors)]
		p.Add(line)
		if len(series) > 1 {
			p.Legend.Add(s.Name, line)
		}
	}
	p.Legend.Top = true
	return p.Save(8*vg.Inch, 4.5*vg.Inch, path)
}

// Heatmap plots a d×d matrix with values in [−1, 1] into a PNG, titled,
// with a colour scale running from blue (−1) through white (0) to red
// (+1), so the identity a trained Barlow Twins cross-correlation
// approaches is a red diagonal.
func Heatmap(path, title string, c []float64, d int) error {
	if len(c) != d*d || d < 1 {
		return fmt.Errorf("report: heat map of %d values as %d×%d", len(c), d, d)
	}
	cm := moreland.SmoothBlueRed()
	cm.SetMin(-1)
	cm.SetMax(1)
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text, p.Y.Label.Text = "j (view B)", "i (view A)"
	h := plotter.NewHeatMap(grid{c, d}, cm.Palette(255))
	h.Min, h.Max = -1, 1
	p.Add(h)
	// Rows run downwards, as a matrix is read.
	p.Y.Scale = plot.InvertedScale{Normalizer: plot.LinearScale{}}
	scale := plot.New()
	scale.Title.Text = "C_ij"
	scale.Add(&plotter.ColorBar{ColorMap: cm, Vertical: true})
	scale.HideX()
	img := vgimg.New(7*vg.Inch, 6*vg.Inch)
	dc := draw.New(img)
	p.Draw(draw.Crop(dc, 0, -1.2*vg.Inch, 0, 0))
	scale.Draw(draw.Crop(dc, 6.0*vg.Inch, -0.25*vg.Inch, 0.4*vg.Inch, -0.6*vg.Inch))
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := (vgimg.PngCanvas{Canvas: img}).WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// grid is a d×d matrix as gonum's GridXYZ, row i at y = i.
type grid struct {
	c []float64
	d int
}

func (g grid) Dims() (int, int)       { return g.d, g.d }
func (g grid) Z(col, row int) float64 { return g.c[row*g.d+col] }
func (g grid) X(col int) float64      { return float64(col) }
func (g grid) Y(row int) float64      { return float64(row) }
