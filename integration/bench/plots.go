package main

import (
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/font"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"

	"github.com/hupd/hupd/integration/bench/loadgen"
)

// The pictures: for a phase with reloads, three panels over time —
// answered requests per second, p99 latency and failed requests, each per
// 100 ms bucket and per client kind — with every reload (or restart)
// drawn as a vertical line. Scenario 4 puts hupd's restart and the naive
// one side by side on the same scales.

var (
	kindColors  = []color.Color{color.RGBA{0x1f, 0x77, 0xb4, 0xff}, color.RGBA{0xff, 0x7f, 0x0e, 0xff}}
	classColors = map[string]color.Color{
		"refused": color.RGBA{0xd6, 0x27, 0x28, 0xff}, "reset": color.RGBA{0x94, 0x67, 0xbd, 0xff},
		"eof": color.RGBA{0x8c, 0x56, 0x4b, 0xff}, "timeout": color.RGBA{0xe3, 0x77, 0xc2, 0xff},
		"non2xx": color.RGBA{0x7f, 0x7f, 0x7f, 0xff}, "other": color.RGBA{0x17, 0xbe, 0xcf, 0xff},
	}
	reloadColor = color.NRGBA{0x2c, 0xa0, 0x2c, 0xc0}
)

// writePlots draws the figures r has the phases for into dir, as SVG,
// and as PNG too when png.
func writePlots(r *Report, dir string, png bool, stdout io.Writer) error {
	phase := func(name string) *Phase {
		for _, p := range r.Phases {
			if p.Name == name {
				return p
			}
		}
		return nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	figs := []struct {
		file, title, mark string
		phases            []*Phase
	}{
		{"swap.svg", "hupd: a blue/green swap every 500 ms under load", "swap", []*Phase{phase("swap")}},
		{"restart.svg", "restarting the server under load: hupd --reload restart vs. stop and start", "restart",
			[]*Phase{phase("restart-hupd"), phase("restart-naive")}},
		{"legacy.svg", "hupd --legacy redirect: goserver binds its own port, swapped every 500 ms", "swap", []*Phase{phase("legacy")}},
	}
	for _, f := range figs {
		if slices.Contains(f.phases, nil) {
			continue
		}
		paths := []string{filepath.Join(dir, f.file)}
		if png {
			paths = append(paths, strings.TrimSuffix(paths[0], ".svg")+".png")
		}
		for _, path := range paths {
			if err := drawFigure(path, f.title, f.mark, f.phases); err != nil {
				return fmt.Errorf("%s: %w", path, err)
			}
			fmt.Fprintln(stdout, "wrote", path)
		}
	}
	return nil
}

// drawFigure draws one column of three panels per phase; mark names the
// reload lines.
func drawFigure(path, title, mark string, phases []*Phase) error {
	rows := 3
	grid := make([][]*plot.Plot, rows)
	for i := range grid {
		grid[i] = make([]*plot.Plot, len(phases))
	}
	var maxRate, maxLat, maxFail float64
	for c, ph := range phases {
		rate, lat, fail := panels(ph)
		grid[0][c], grid[1][c], grid[2][c] = rate, lat, fail
		maxRate, maxLat, maxFail = max(maxRate, rate.Y.Max), max(maxLat, lat.Y.Max), max(maxFail, fail.Y.Max)
		rate.Title.Text = ph.Target
		if len(phases) == 1 {
			rate.Title.Text = title + "\n" + ph.Target
		}
	}
	// One scale per row, so that the columns compare at a glance; then
	// the reload lines up to it.
	for c, ph := range phases {
		// Headroom above the data for the legend.
		for r, top := range []float64{maxRate * 1.3, maxLat * 1.3, max(maxFail*1.3, 1)} {
			p := grid[r][c]
			p.Y.Min, p.Y.Max = 0, top
			addReloads(p, ph.Reloads, top, mark)
		}
	}
	w, h := vg.Length(len(phases))*8*vg.Inch, 7*vg.Inch
	var canvas interface {
		vg.CanvasSizer
		io.WriterTo
	}
	if strings.HasSuffix(path, ".png") {
		canvas = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(w, h), vgimg.UseDPI(96), vgimg.UseBackgroundColor(color.White))}
	} else {
		canvas = vgsvg.New(w, h)
	}
	dc := draw.New(canvas)
	if len(phases) > 1 {
		// The figure's title above the columns.
		dc.FillText(draw.TextStyle{Color: color.Black, Font: font.From(plot.DefaultFont, 14), Handler: plot.DefaultTextHandler,
			XAlign: draw.XCenter, YAlign: draw.YTop}, vg.Point{X: w / 2, Y: h - vg.Points(4)}, title)
		dc = draw.Crop(dc, 0, 0, 0, -vg.Points(20))
	}
	tiles := draw.Tiles{Rows: rows, Cols: len(phases), PadX: vg.Millimeter * 6, PadY: vg.Millimeter * 4,
		PadTop: vg.Millimeter * 2, PadBottom: vg.Millimeter * 2, PadLeft: vg.Millimeter * 2, PadRight: vg.Millimeter * 4}
	cs := plot.Align(grid, tiles, dc)
	for r := range grid {
		for c := range grid[r] {
			grid[r][c].Draw(cs[r][c])
		}
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := canvas.WriteTo(f); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// panels makes the three plots of one phase, each with its Y.Max set to
// its data's maximum.
func panels(ph *Phase) (rate, lat, fail *plot.Plot) {
	rate, lat, fail = plot.New(), plot.New(), plot.New()
	rate.Y.Label.Text = "answered / s"
	lat.Y.Label.Text = "p99 latency (ms)"
	fail.Y.Label.Text = "failed per 100 ms"
	fail.X.Label.Text = "time (s)"
	classes := map[string]plotter.XYs{}
	for k, l := range ph.Loads {
		perSec := 1000 / l.BucketMS
		var rx, lx plotter.XYs
		for i, b := range l.Buckets {
			if i == len(l.Buckets)-1 {
				break // the last bucket is partial
			}
			x := (b.AtMS + l.BucketMS/2) / 1000
			rx = append(rx, plotter.XY{X: x, Y: float64(b.Requests) * perSec})
			rate.Y.Max = max(rate.Y.Max, float64(b.Requests)*perSec)
			if b.Requests > 0 {
				lx = append(lx, plotter.XY{X: x, Y: b.P99})
				lat.Y.Max = max(lat.Y.Max, b.P99)
			}
			for _, c := range loadgen.Classes() {
				if len(classes[c]) < len(l.Buckets)-1 {
					classes[c] = append(classes[c], plotter.XY{X: x})
				}
				classes[c][i].Y += float64(b.Failures[c])
			}
		}
		label := kindLabel(l)
		addLine(rate, rx, kindColors[k%len(kindColors)], label)
		addLine(lat, lx, kindColors[k%len(kindColors)], label)
	}
	anyFail := false
	for _, c := range loadgen.Classes() {
		xy := classes[c]
		total := 0.0
		for _, p := range xy {
			total += p.Y
			fail.Y.Max = max(fail.Y.Max, p.Y)
		}
		if total > 0 {
			addLine(fail, xy, classColors[c], c)
			anyFail = true
		}
	}
	if !anyFail {
		// A flat zero, drawn and named: nothing failed.
		if xy := classes[loadgen.Classes()[0]]; len(xy) > 0 {
			addLine(fail, xy, color.Black, "none failed")
		}
	}
	for _, p := range []*plot.Plot{rate, lat, fail} {
		p.Legend.Top = true
		p.Add(plotter.NewGrid())
		if n := len(ph.Loads); n > 0 {
			p.X.Min, p.X.Max = 0, ph.Loads[0].DurationMS/1000
		}
	}
	return rate, lat, fail
}

func addLine(p *plot.Plot, xy plotter.XYs, c color.Color, label string) {
	if len(xy) == 0 {
		return
	}
	l, err := plotter.NewLine(xy)
	if err != nil {
		return // NaN or Inf: nothing sensible to draw
	}
	l.LineStyle.Color = c
	l.LineStyle.Width = vg.Points(1)
	p.Add(l)
	p.Legend.Add(label, l)
}

// addReloads draws each reload's start as a vertical line up to top, and
// one legend entry for them all.
func addReloads(p *plot.Plot, rs []Reload, top float64, label string) {
	var first *plotter.Line
	for _, r := range rs {
		x := r.AtMS / 1000
		l, err := plotter.NewLine(plotter.XYs{{X: x, Y: 0}, {X: x, Y: top}})
		if err != nil || math.IsNaN(x) {
			continue
		}
		l.LineStyle.Color = reloadColor
		l.LineStyle.Width = vg.Points(0.75)
		if len(rs) > 40 {
			l.LineStyle.Width = vg.Points(0.4) // a dense series: lighter
		}
		p.Add(l)
		if first == nil {
			first = l
		}
	}
	if first != nil {
		p.Legend.Add(label, first)
	}
}
