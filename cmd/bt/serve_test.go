package main

import (
	"bytes"
	"context"
	"fmt"
	"image/png"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bt-org/bt/internal/serve"
)

// chromium finds Debian's chromium (scripts/setup.sh installs it) or
// another Chrome.
func chromium() string {
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// TestServeInBrowser: bt serve beside a bt pretrain that is training, in
// headless chromium. The run page shows the run running with curves that
// have data, and draws the new steps as they arrive; once the run ends it
// shows it finished with every step and its heat maps; the overlay and
// runs pages show it; and on a folder of images with one duplicated, the
// neighbours page embeds them on the device and gives the duplicate as
// the picked image's nearest neighbour, at distance 0. Screenshots of the
// run and neighbours pages go to $BT_SERVE_SCREENSHOTS when it is set
// (docs/serve-run.png and docs/serve-neighbours.png are made so).
func TestServeInBrowser(t *testing.T) {
	browser := chromium()
	if browser == "" {
		t.Skip("no chromium on PATH: scripts/setup.sh installs Debian's chromium for this test")
	}
	runs := t.TempDir()
	images := filepath.Join(t.TempDir(), "images")
	writeImages(t, images, 12)
	dup, err := os.ReadFile(filepath.Join(images, "imgaa.png"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(images, "copy-of-a.png"), dup, 0o644); err != nil {
		t.Fatal(err)
	}

	const steps = 30
	run := filepath.Join(runs, "live")
	train := btCommand("pretrain", args("-out", run, "-steps", fmt.Sprint(steps), "-checkpoint-every", "10")...)
	var log bytes.Buffer
	train.Stdout, train.Stderr = &log, &log
	if err := train.Start(); err != nil {
		t.Fatal(err)
	}
	var trainErr error
	exited := make(chan struct{}) // closed once trainErr is set
	go func() { trainErr = train.Wait(); close(exited) }()
	t.Cleanup(func() {
		resume(train.Process)
		train.Process.Kill()
		<-exited
	})

	s, err := serve.New(serve.Options{Root: runs, Images: images, CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Minute)
	defer stop()
	addr := make(chan net.Addr, 1)
	go serve.ListenAndServe(ctx, "127.0.0.1:0", false, s, func(a net.Addr) { addr <- a })
	base := fmt.Sprintf("http://%s/", <-addr)

	// The run is paused after its first steps so that the page certainly
	// meets it running, and let go once the page has drawn them.
	for {
		b, _ := os.ReadFile(filepath.Join(run, "metrics.jsonl"))
		if bytes.Count(b, []byte("\n")) >= 2 {
			break
		}
		select {
		case <-exited:
			t.Fatalf("bt pretrain ended before its second step: %v\n%s", trainErr, log.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := pause(train.Process); err != nil {
		t.Fatal(err)
	}

	alloc, cancel := chromedp.NewExecAllocator(ctx, append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser), chromedp.NoSandbox, chromedp.DisableGPU, chromedp.WindowSize(1280, 1000))...)
	defer cancel()
	page, cancel := chromedp.NewContext(alloc)
	defer cancel()
	eval := func(js string) any {
		t.Helper()
		v, err := chromedp.Run(page, chromedp.Evaluate[any](js))
		if err != nil {
			t.Fatalf("%s: %v", js, err)
		}
		return v
	}
	// until evaluates js until it is true; the 5-minute context is a
	// ceiling for a broken page, not a timing the test measures.
	until := func(what, js string) {
		t.Helper()
		for {
			if v, err := chromedp.Run(page, chromedp.Evaluate[any](js)); err == nil && v == true {
				return
			}
			select {
			case <-ctx.Done():
				t.Fatalf("the page never showed %s (%s); it holds:\n%v", what, js, eval(`document.getElementById("main").innerText`))
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	// points is how many steps the first curve of a chart draws.
	points := func(chart string) int {
		t.Helper()
		v := eval(fmt.Sprintf(`Number((document.querySelector("#chart-%s polyline") || {getAttribute: () => -1}).getAttribute("data-points"))`, chart))
		return int(v.(float64))
	}
	state := `(document.querySelector("h1 .state") || {dataset: {}}).dataset.state`
	screenshot := func(name string) {
		t.Helper()
		b, err := chromedp.Run(page, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(b))
		if err != nil || img.Bounds().Dx() < 1000 {
			t.Fatalf("screenshot %s: %v, %v", name, err, img)
		}
		if dir := os.Getenv("BT_SERVE_SCREENSHOTS"); dir != "" {
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	if err := chromedp.Do(page, chromedp.Navigate(base+"#/run/live")); err != nil {
		t.Fatal(err)
	}
	until("the run running with its first steps", state+` === "running" && Number(document.querySelector("#chart-loss svg")?.getAttribute("data-points")) >= 2`)
	first := points("loss")
	for _, c := range []string{"terms", "lr", "c", "speed", "memory"} {
		if n := points(c); n != first {
			t.Errorf("chart %s has %d points, the loss chart %d", c, n, first)
		}
	}
	if err := resume(train.Process); err != nil {
		t.Fatal(err)
	}
	until("new steps drawn", fmt.Sprintf(`Number(document.querySelector("#chart-loss svg")?.getAttribute("data-points")) > %d`, first))
	<-exited
	if trainErr != nil {
		t.Fatalf("bt pretrain: %v\n%s", trainErr, log.String())
	}
	until("the run finished with every step", fmt.Sprintf(`%s === "finished" && Number(document.querySelector("#chart-loss svg")?.getAttribute("data-points")) === %d`, state, steps))
	until("both heat maps loaded", `[...document.querySelectorAll("#heat img")].filter(i => i.complete && i.naturalWidth > 0).length === 2`)
	screenshot("serve-run.png")

	if err := chromedp.Do(page, chromedp.Navigate(base+"#/compare/live")); err != nil {
		t.Fatal(err)
	}
	until("the overlay page's loss", fmt.Sprintf(`Number(document.querySelector("#chart-loss polyline[data-series=live]")?.getAttribute("data-points")) === %d`, steps))
	if err := chromedp.Do(page, chromedp.Navigate(base+"#/")); err != nil {
		t.Fatal(err)
	}
	until("the run listed as finished", `document.querySelector('#runs tr[data-run="live"] [data-state]')?.dataset.state === "finished"`)

	if err := chromedp.Do(page, chromedp.Navigate(base+"#/embed/live")); err != nil {
		t.Fatal(err)
	}
	until("the embedding form", `!!document.getElementById("embed-go")`)
	eval(`document.getElementById("source").value = "images"; document.getElementById("n").value = "100"; document.getElementById("embed-go").click(); true`)
	until("the embedding done", `!!document.querySelector('#embed-status [data-state="done"]')`)
	if n := eval(`Number(document.getElementById("map").getAttribute("data-points"))`); n != 13.0 {
		t.Errorf("the PCA map has %v points, want the folder's 13 images", n)
	}
	eval(`document.getElementById("query").value = "imgaa.png"; document.getElementById("query-go").click(); true`)
	until("the neighbours", `!!document.querySelector("#neighbours li:not(.query)")`)
	nearest := eval(`(() => { const li = document.querySelector("#neighbours li:not(.query)"); return li.dataset.name + " " + li.dataset.distance })()`).(string)
	name, dist, _ := strings.Cut(nearest, " ")
	if name != "copy-of-a.png" {
		t.Errorf("the nearest neighbour of imgaa.png is %s, want its copy, copy-of-a.png", nearest)
	}
	var d float64
	if _, err := fmt.Sscan(dist, &d); err != nil || d > 1e-5 {
		t.Errorf("the copy is at distance %q, want 0", dist)
	}
	until("the neighbours' images loaded", `[...document.querySelectorAll("#neighbours img")].every(i => i.complete && i.naturalWidth > 0)`)
	screenshot("serve-neighbours.png")
}

// TestServeFlags: bt serve refuses, before it opens anything, an address
// that is not loopback without -allow-remote, a second directory, and a
// runs directory that is not there.
func TestServeFlags(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"-addr", ":8080", dir}, "not a loopback address"},
		{[]string{"-addr", "0.0.0.0:8080", dir}, "-allow-remote"},
		{[]string{"-addr", "127.0.0.1", dir}, "-addr 127.0.0.1"},
		{[]string{dir, dir}, "one RUNS_DIR"},
		{[]string{"-max-file-mib", "0", dir}, "flag -max-file-mib"},
		{[]string{"-addr", "127.0.0.1:0", filepath.Join(dir, "none")}, "runs directory"},
		{[]string{"-addr", "127.0.0.1:0", "-images", filepath.Join(dir, "none"), dir}, "images folder"},
	} {
		err := runServe(c.args)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("bt serve %v: %v, want an error with %q", c.args, err, c.want)
		}
	}
	f, err := parseServe([]string{"-addr", "0.0.0.0:9", "-allow-remote", dir})
	if err != nil || f.opts.Root != dir || !f.opts.AllowRemote || f.opts.MaxFileBytes != serve.DefaultMaxFileBytes {
		t.Errorf("-allow-remote: %+v, %v", f, err)
	}
}
