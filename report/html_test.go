package report

import (
	"context"
	"fmt"
	"image"
	"image/png"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tpflow/tpflow/internal/testkit"
)

// chromiumBin returns headless Chromium, failing under CI when it is
// missing (scripts/install-deps.sh installs Debian's chromium) and skipping
// otherwise.
func chromiumBin(t *testing.T) string {
	t.Helper()
	return testkit.LookPath(t, "chromium is not installed (Debian: apt-get install chromium, or make deps)", "chromium", "/usr/bin/chromium")
}

// screenshot renders page in headless Chromium at width × height CSS
// pixels and returns the decoded PNG.
func screenshot(t *testing.T, page string, width, height int) image.Image {
	t.Helper()
	bin := chromiumBin(t)
	dir := t.TempDir()
	htmlPath := filepath.Join(dir, "report.html")
	if err := os.WriteFile(htmlPath, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	pngPath := filepath.Join(dir, "shot.png")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--hide-scrollbars",
		"--force-device-scale-factor=1", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--screenshot="+pngPath, fmt.Sprintf("--window-size=%d,%d", width, height), "file://"+htmlPath)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatalf("chromium wrote no screenshot: %v\n%s", err, out)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	if keep := os.Getenv("REPORT_SCREENSHOT"); keep != "" {
		b, _ := os.ReadFile(pngPath)
		_ = os.WriteFile(keep, b, 0o644)
	}
	return img
}

type rgb struct{ r, g, b uint8 }

func hexColor(s string) rgb {
	v, err := strconv.ParseUint(s[1:], 16, 32)
	if err != nil {
		panic(err)
	}
	return rgb{uint8(v >> 16), uint8(v >> 8), uint8(v)}
}

func near(img image.Image, x, y int, c rgb, tol int) bool {
	r, g, b, _ := img.At(x, y).RGBA()
	d := func(a uint32, b uint8) bool { return abs(int(a>>8)-int(b)) <= tol }
	return d(r, c.r) && d(g, c.g) && d(b, c.b)
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

// regions returns the bounding boxes of the connected areas of the chart
// background colour larger than minArea pixels: the charts of the page.
func regions(img image.Image, bg rgb, minArea int) []image.Rectangle {
	bounds := img.Bounds()
	w, h := bounds.Dx(), bounds.Dy()
	seen := make([]bool, w*h)
	var out []image.Rectangle
	for y := range h {
		for x := range w {
			if seen[y*w+x] || !near(img, x, y, bg, 2) {
				continue
			}
			r := image.Rect(x, y, x+1, y+1)
			area := 0
			stack := []int{y*w + x}
			seen[y*w+x] = true
			for len(stack) > 0 {
				i := stack[len(stack)-1]
				stack = stack[:len(stack)-1]
				px, py := i%w, i/w
				area++
				r = r.Union(image.Rect(px, py, px+1, py+1))
				for _, n := range [][2]int{{px + 1, py}, {px - 1, py}, {px, py + 1}, {px, py - 1}} {
					if n[0] < 0 || n[1] < 0 || n[0] >= w || n[1] >= h {
						continue
					}
					j := n[1]*w + n[0]
					if !seen[j] && near(img, n[0], n[1], bg, 2) {
						seen[j] = true
						stack = append(stack, j)
					}
				}
			}
			if area >= minArea {
				out = append(out, r)
			}
		}
	}
	return out
}

func countColor(img image.Image, r image.Rectangle, c rgb) int {
	n := 0
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			if near(img, x, y, c, 10) {
				n++
			}
		}
	}
	return n
}

// TestHTMLRendersInChromium renders the dataset's report at a phone's
// width in headless Chromium and checks in the screenshot that the charts
// are drawn: chart areas (found by their background colour) hold pixels of
// the series colours, and nothing is wider than the screen.
func TestHTMLRendersInChromium(t *testing.T) {
	conn, cfg := setup(t)
	loadFixture(t, conn, cfg)
	rows, err := Capacity(context.Background(), conn, CapacityQuery{Database: cfg.Database, From: fixFrom, To: fixTo, Depth: 2, Target: 0.7})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	rep := Report{From: fixFrom, To: fixTo, Depth: 2, Target: 0.7, Scope: "every system", Rows: rows, Generated: fixTo}
	if err := rep.HTML(&b); err != nil {
		t.Fatal(err)
	}
	const width, height = 412, 2400 // a phone's CSS width
	img := screenshot(t, b.String(), width, height)
	if img.Bounds().Dx() != width {
		t.Fatalf("screenshot is %v", img.Bounds())
	}
	charts := regions(img, hexColor(ColorChartBG), 2000)
	if len(charts) < 5 {
		t.Fatalf("%d chart areas in the screenshot, want the overview and a card's four", len(charts))
	}
	for _, r := range charts {
		if r.Max.X > width {
			t.Errorf("chart %v wider than the screen", r)
		}
	}
	// The overview comes first: CPU and memory bars.
	ov := charts[0]
	if countColor(img, ov, hexColor(ColorCPU)) < 50 || countColor(img, ov, hexColor(ColorMemory)) < 50 {
		t.Errorf("overview %v lacks CPU or memory bars", ov)
	}
	// Every series colour is drawn in chart areas of at least three cards
	// (the screenshot shows the first ones).
	for _, c := range []struct{ name, color string }{{"CPU", ColorCPU}, {"memory", ColorMemory}, {"QPS", ColorQPS}, {"TP99", ColorTP99}} {
		n := 0
		for _, r := range charts[1:] {
			if countColor(img, r, hexColor(c.color)) >= 30 {
				n++
			}
		}
		if n < 3 {
			t.Errorf("%s colour %s drawn in %d chart areas, want at least 3", c.name, c.color, n)
		}
	}
	t.Logf("%d chart areas; first card charts %v", len(charts), charts[1:min(5, len(charts))])
}
