package report

import (
	"encoding/csv"
	"fmt"
	"html"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Formats are the output formats of a capacity report.
var Formats = []string{"html", "md", "csv"}

// Report is a capacity report ready to render.
type Report struct {
	From, To time.Time
	// Depth is the deepest level of the rows (an index into Levels).
	Depth int
	// Target is the recommendation's target peak utilisation.
	Target float64
	// Selector says what the report covers, for its title ("every system"
	// when empty).
	Scope string
	Rows  []Row
	// Generated is when the report was made.
	Generated time.Time
}

// Render writes the report in format (html, md or csv).
func (r Report) Render(w io.Writer, format string) error {
	switch format {
	case "csv":
		return r.CSV(w)
	case "md":
		return r.Markdown(w)
	case "html":
		return r.HTML(w)
	}
	return badRequest("format: %q is not one of %s", format, strings.Join(Formats, ", "))
}

// FormulaText documents the recommendation, as every format prints it.
const FormulaText = "replicas_needed = ceil(instances × peak_util / target_util), where peak_util is the higher of " +
	"peak CPU used / CPU limit and peak memory used / memory limit (peak = the highest pane total of the row), " +
	"and instances the most containers reporting at one time; the load is assumed to spread evenly over replicas."

// csvHeader are the CSV columns, one per Row field.
var csvHeader = slices.Concat([]string{"level"}, Levels, []string{
	"idcs", "instances",
	"cpu_avg_cores", "cpu_p95_cores", "cpu_peak_cores", "cpu_limit_cores", "cpu_util_avg", "cpu_util_peak",
	"mem_avg_bytes", "mem_p95_bytes", "mem_peak_bytes", "mem_limit_bytes", "mem_util_avg", "mem_util_peak",
	"calls", "errors", "qps", "tp99_us", "tp99_first_us", "tp99_last_us", "qps_first", "qps_last",
	"replicas_needed", "recommendation_basis", "recommendation",
})

// CSV writes one line per row with full-precision numbers; unknown values
// are empty.
func (r Report) CSV(w io.Writer) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return fmt.Errorf("cannot write CSV: %w", err)
	}
	for _, row := range r.Rows {
		tf, tl := trendEnds(row.Trend, func(p TrendPoint) float64 { return p.TP99Us })
		qf, ql := trendEnds(row.Trend, func(p TrendPoint) float64 { return p.QPS })
		rec := row.Recommendation
		replicas := ""
		if rec.OK {
			replicas = strconv.Itoa(rec.Replicas)
		}
		rec2 := ""
		if rec.OK {
			rec2 = rec.Formula + " (" + rec.Basis + ")"
		}
		limit := func(f float64) string {
			if f > 0 {
				return g(f)
			}
			return ""
		}
		line := []string{
			Levels[row.Depth], row.System, row.App, row.Group, row.IDC, strings.Join(row.IDCs, " "), strconv.Itoa(row.Instances),
			g(row.CPU.Avg), g(row.CPU.P95), g(row.CPU.Peak), limit(row.CPU.Limit), g(row.CPU.UtilAvg), g(row.CPU.UtilPeak),
			g(row.Memory.Avg), g(row.Memory.P95), g(row.Memory.Peak), limit(row.Memory.Limit), g(row.Memory.UtilAvg), g(row.Memory.UtilPeak),
			strconv.FormatUint(row.Calls, 10), strconv.FormatUint(row.Errors, 10), g(row.QPS), g(row.TP99Us), g(tf), g(tl), g(qf), g(ql),
			replicas, rec.Basis, rec2,
		}
		if err := cw.Write(line); err != nil {
			return fmt.Errorf("cannot write CSV: %w", err)
		}
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("cannot write CSV: %w", err)
	}
	return nil
}

// g formats a number in full precision without an exponent (spreadsheets
// read it as a number), "" when unknown.
func g(f float64) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return ""
	}
	return strconv.FormatFloat(f, 'f', -1, 64)
}

// trendEnds returns the first and last known values of a trend.
func trendEnds(t []TrendPoint, f func(TrendPoint) float64) (first, last float64) {
	first, last = math.NaN(), math.NaN()
	for _, p := range t {
		if v := f(p); !math.IsNaN(v) {
			if math.IsNaN(first) {
				first = v
			}
			last = v
		}
	}
	return first, last
}

func (r Report) title() string {
	return fmt.Sprintf("Capacity report by %s: %s, %s to %s", Levels[r.Depth], r.Scope,
		r.From.UTC().Format("2006-01-02 15:04"), r.To.UTC().Format("2006-01-02 15:04 MST"))
}

// Markdown writes a table for chat tools: rows indented by level, numbers
// rounded for reading.
func (r Report) Markdown(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "## %s\n\n", r.title())
	fmt.Fprintf(&b, "Target peak utilisation %s. CPU in cores, memory in GiB; used = avg / p95 / peak, util = avg / peak of the limit.\n\n", pct(r.Target))
	b.WriteString("| row | IDC | inst | CPU used | CPU limit | CPU util | mem used | mem limit | mem util | QPS | TP99 (first → last) | replicas |\n")
	b.WriteString("|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	for _, row := range r.Rows {
		name := strings.Repeat("&nbsp;&nbsp;", row.Depth) + mdEscape(row.Name())
		if row.Depth == 0 {
			name = "**" + mdEscape(row.Name()) + "**"
		}
		tf, tl := trendEnds(row.Trend, func(p TrendPoint) float64 { return p.TP99Us })
		tp := fmtUs(row.TP99Us)
		if !math.IsNaN(tf) {
			tp += " (" + fmtUs(tf) + " → " + fmtUs(tl) + ")"
		}
		rec := "n/a"
		if row.Recommendation.OK {
			rec = fmt.Sprintf("**%d** = %s by %s", row.Recommendation.Replicas, strings.SplitN(row.Recommendation.Formula, " = ", 2)[0], row.Recommendation.Basis)
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n",
			name, mdEscape(strings.Join(row.IDCs, " ")), row.Instances,
			triple(row.CPU, 1), limitStr(row.CPU.Limit, 1), utilPair(row.CPU),
			triple(row.Memory, 1<<30), limitStr(row.Memory.Limit, 1<<30), utilPair(row.Memory),
			num2(row.QPS), tp, rec)
	}
	fmt.Fprintf(&b, "\n%s\n", FormulaText)
	_, err := io.WriteString(w, b.String())
	return err
}

func mdEscape(s string) string {
	r := strings.NewReplacer("|", `\|`, "*", `\*`, "_", `\_`, "`", "\\`", "<", "&lt;", ">", "&gt;", "\n", " ")
	return r.Replace(s)
}

func triple(r Resource, unit float64) string {
	if math.IsNaN(r.Avg) {
		return "–"
	}
	return fmt.Sprintf("%s / %s / %s", num2(r.Avg/unit), num2(r.P95/unit), num2(r.Peak/unit))
}

func limitStr(l, unit float64) string {
	if !(l > 0) {
		return "–"
	}
	return num2(l / unit)
}

func utilPair(r Resource) string {
	if math.IsNaN(r.UtilAvg) {
		return "–"
	}
	return pct(r.UtilAvg) + " / " + pct(r.UtilPeak)
}

func pct(f float64) string {
	if math.IsNaN(f) {
		return "–"
	}
	return strconv.FormatFloat(f*100, 'f', 1, 64) + "%"
}

// num2 prints a number with up to 2 decimals (3 significant digits for
// small ones).
func num2(f float64) string {
	switch {
	case math.IsNaN(f):
		return "–"
	case math.Abs(f) >= 100:
		return strconv.FormatFloat(f, 'f', 0, 64)
	case math.Abs(f) >= 1 || f == 0:
		return strings.TrimSuffix(strings.TrimRight(strconv.FormatFloat(f, 'f', 2, 64), "0"), ".")
	}
	return strconv.FormatFloat(f, 'g', 3, 64)
}

// fmtUs prints a latency in µs as µs, ms or s.
func fmtUs(us float64) string {
	switch {
	case math.IsNaN(us):
		return "–"
	case us >= 1e6:
		return num2(us/1e6) + " s"
	case us >= 1e3:
		return num2(us/1e3) + " ms"
	}
	return num2(us) + " µs"
}

// Chart colours; the HTML test looks for them in the screenshot.
const (
	ColorCPU     = "#1f77b4"
	ColorMemory  = "#2ca02c"
	ColorQPS     = "#ff7f0e"
	ColorTP99    = "#d62728"
	ColorLimit   = "#555555"
	ColorChartBG = "#fbf7ea"
)

// HTML writes one self-contained page: inline CSS and SVG, no scripts, no
// external fonts or images, laid out for a phone as well as a desk.
func (r Report) HTML(w io.Writer) error {
	var b strings.Builder
	t := html.EscapeString(r.title())
	b.WriteString("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n")
	b.WriteString("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n")
	fmt.Fprintf(&b, "<title>%s</title>\n<style>\n%s</style></head><body>\n", t, css)
	fmt.Fprintf(&b, "<h1>%s</h1>\n", t)
	fmt.Fprintf(&b, "<p class=\"meta\">Target peak utilisation %s · generated %s</p>\n",
		pct(r.Target), html.EscapeString(r.Generated.UTC().Format(time.RFC3339)))
	b.WriteString("<h2>Peak utilisation</h2>\n")
	b.WriteString(r.overviewSVG())
	for _, row := range r.Rows {
		writeCard(&b, row, r)
	}
	fmt.Fprintf(&b, "<p class=\"formula\">%s</p>\n</body></html>\n", html.EscapeString(FormulaText))
	_, err := io.WriteString(w, b.String())
	return err
}

const css = `body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1100px;padding:8px 12px;color:#222;background:#fff}
h1{font-size:1.25em;margin:.4em 0}h2{font-size:1.05em;margin:.8em 0 .3em}
.meta,.formula{color:#555;font-size:.85em}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 10px;margin:10px 0}
.card.d0{border-left:6px solid #444}.card.d1{margin-left:10px;border-left:4px solid #888}
.card.d2{margin-left:20px}.card.d3{margin-left:30px}
.path{font-weight:600;word-break:break-all}
.nums{display:grid;grid-template-columns:repeat(auto-fit,minmax(150px,1fr));gap:2px 12px;font-size:.85em;margin:6px 0}
.nums b{font-weight:600}
.rec{font-size:.9em;margin:4px 0;padding:4px 6px;background:#f1f5fb;border-radius:4px}
.charts{display:grid;grid-template-columns:repeat(auto-fit,minmax(160px,1fr));gap:8px}
.chart svg{width:100%;height:auto;display:block}
.chart .cap{font-size:.75em;color:#444}
svg.overview{width:100%;height:auto;display:block}
`

func writeCard(b *strings.Builder, row Row, r Report) {
	path := make([]string, 0, 4)
	for i, l := range row.Labels() {
		path = append(path, Levels[i]+" "+l)
	}
	fmt.Fprintf(b, "<div class=\"card d%d\"><div class=\"path\">%s</div>\n", row.Depth, html.EscapeString(strings.Join(path, " / ")))
	b.WriteString("<div class=\"nums\">")
	item := func(k, v string) {
		fmt.Fprintf(b, "<div>%s <b>%s</b></div>", html.EscapeString(k), html.EscapeString(v))
	}
	item("IDC", orDash(strings.Join(row.IDCs, " ")))
	item("instances", strconv.Itoa(row.Instances))
	item("CPU avg/p95/peak", triple(row.CPU, 1)+" cores")
	item("CPU limit", limitStr(row.CPU.Limit, 1)+" cores")
	item("CPU util avg/peak", utilPair(row.CPU))
	item("mem avg/p95/peak", triple(row.Memory, 1<<30)+" GiB")
	item("mem limit", limitStr(row.Memory.Limit, 1<<30)+" GiB")
	item("mem util avg/peak", utilPair(row.Memory))
	item("calls", strconv.FormatUint(row.Calls, 10))
	item("errors", strconv.FormatUint(row.Errors, 10))
	item("QPS", num2(row.QPS))
	item("TP99", fmtUs(row.TP99Us))
	b.WriteString("</div>\n")
	if rec := row.Recommendation; rec.OK {
		fmt.Fprintf(b, "<div class=\"rec\">Replicas needed: <b>%d</b> = %s (peak %s utilisation, target %s)</div>\n",
			rec.Replicas, html.EscapeString(strings.SplitN(rec.Formula, " = ", 2)[0]), rec.Basis, pct(rec.Target))
	} else {
		b.WriteString("<div class=\"rec\">Replicas needed: n/a (no CPU or memory limit known)</div>\n")
	}
	b.WriteString("<div class=\"charts\">\n")
	chart(b, "CPU cores", row.Trend, func(p TrendPoint) float64 { return p.CPU }, ColorCPU, row.CPU.Limit, 1)
	chart(b, "memory GiB", row.Trend, func(p TrendPoint) float64 { return p.Memory }, ColorMemory, row.Memory.Limit, 1<<30)
	bars(b, "QPS", row.Trend, func(p TrendPoint) float64 { return p.QPS }, ColorQPS)
	chart(b, "TP99 ms", row.Trend, func(p TrendPoint) float64 { return p.TP99Us }, ColorTP99, 0, 1e3)
	b.WriteString("</div></div>\n")
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// Chart geometry in SVG user units.
const (
	chartW, chartH = 240.0, 100.0
	padL, padB     = 4.0, 4.0
)

func svgOpen(b *strings.Builder, label string) {
	fmt.Fprintf(b, "<div class=\"chart\"><svg viewBox=\"0 0 %g %g\" role=\"img\" aria-label=\"%s\"><rect width=\"%g\" height=\"%g\" fill=\"%s\"/>",
		chartW, chartH, html.EscapeString(label), chartW, chartH, ColorChartBG)
}

// chart draws a line of f over the trend (gaps where unknown) and, when
// limit > 0, a dashed limit line; values are divided by unit.
func chart(b *strings.Builder, label string, t []TrendPoint, f func(TrendPoint) float64, color string, limit, unit float64) {
	hi := 0.0
	for _, p := range t {
		if v := f(p) / unit; !math.IsNaN(v) {
			hi = max(hi, v)
		}
	}
	if limit > 0 {
		hi = max(hi, limit/unit)
	}
	svgOpen(b, label)
	y := func(v float64) float64 {
		if hi <= 0 {
			return chartH - padB
		}
		return chartH - padB - v/(hi*1.1)*(chartH-2*padB)
	}
	x := func(i int) float64 {
		if len(t) <= 1 {
			return chartW / 2
		}
		return padL + float64(i)*(chartW-2*padL)/float64(len(t)-1)
	}
	if limit > 0 {
		fmt.Fprintf(b, "<line x1=\"0\" x2=\"%g\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>",
			chartW, y(limit/unit), y(limit/unit), ColorLimit)
	}
	var seg []string
	flush := func() {
		switch len(seg) {
		case 0:
		case 1:
			xy := strings.Split(seg[0], ",")
			fmt.Fprintf(b, "<circle cx=\"%s\" cy=\"%s\" r=\"3\" fill=\"%s\"/>", xy[0], xy[1], color)
		default:
			fmt.Fprintf(b, "<polyline points=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"3\" stroke-linejoin=\"round\"/>", strings.Join(seg, " "), color)
		}
		seg = seg[:0]
	}
	for i, p := range t {
		v := f(p) / unit
		if math.IsNaN(v) {
			flush()
			continue
		}
		seg = append(seg, fmt.Sprintf("%.1f,%.1f", x(i), y(v)))
	}
	flush()
	b.WriteString("</svg>")
	fmt.Fprintf(b, "<div class=\"cap\">%s, max %s</div></div>\n", html.EscapeString(label), num2(hi))
}

// bars draws f over the trend as bars.
func bars(b *strings.Builder, label string, t []TrendPoint, f func(TrendPoint) float64, color string) {
	hi := 0.0
	for _, p := range t {
		if v := f(p); !math.IsNaN(v) {
			hi = max(hi, v)
		}
	}
	svgOpen(b, label)
	if n := len(t); n > 0 && hi > 0 {
		w := (chartW - 2*padL) / float64(n)
		for i, p := range t {
			v := f(p)
			if math.IsNaN(v) || v <= 0 {
				continue
			}
			h := v / (hi * 1.1) * (chartH - 2*padB)
			fmt.Fprintf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>",
				padL+float64(i)*w+w*0.1, chartH-padB-h, w*0.8, h, color)
		}
	}
	b.WriteString("</svg>")
	fmt.Fprintf(b, "<div class=\"cap\">%s, max %s</div></div>\n", html.EscapeString(label), num2(hi))
}

// overviewSVG draws one pair of bars per row: CPU and memory peak
// utilisation, with the target as a dashed line.
func (r Report) overviewSVG() string {
	var b strings.Builder
	const rowH, labelW, barW = 22.0, 150.0, 280.0
	h := rowH*float64(len(r.Rows)) + 24
	fmt.Fprintf(&b, "<svg class=\"overview\" viewBox=\"0 0 %g %g\" role=\"img\" aria-label=\"peak utilisation per row\"><rect width=\"%g\" height=\"%g\" fill=\"%s\"/>",
		labelW+barW+80, h, labelW+barW+80, h, ColorChartBG)
	scale := 1.0
	for _, row := range r.Rows {
		for _, u := range []float64{row.CPU.UtilPeak, row.Memory.UtilPeak} {
			if !math.IsNaN(u) {
				scale = max(scale, u)
			}
		}
	}
	for i, row := range r.Rows {
		y := 4 + rowH*float64(i)
		name := strings.Repeat("  ", row.Depth) + row.Name()
		if rs := []rune(name); len(rs) > 24 {
			name = string(rs[:23]) + "…"
		}
		fmt.Fprintf(&b, "<text x=\"4\" y=\"%.1f\" font-size=\"11\" fill=\"#222\" xml:space=\"preserve\">%s</text>", y+13, html.EscapeString(name))
		for j, u := range []float64{row.CPU.UtilPeak, row.Memory.UtilPeak} {
			if math.IsNaN(u) {
				continue
			}
			color := ColorCPU
			if j == 1 {
				color = ColorMemory
			}
			fmt.Fprintf(&b, "<rect x=\"%g\" y=\"%.1f\" width=\"%.1f\" height=\"8\" fill=\"%s\"/>", labelW, y+2+float64(j)*9, u/scale*barW, color)
		}
		label := fmt.Sprintf("%s / %s", pct(row.CPU.UtilPeak), pct(row.Memory.UtilPeak))
		fmt.Fprintf(&b, "<text x=\"%g\" y=\"%.1f\" font-size=\"10\" fill=\"#222\">%s</text>", labelW+barW+2, y+13, html.EscapeString(label))
	}
	tx := labelW + r.Target/scale*barW
	fmt.Fprintf(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"0\" y2=\"%g\" stroke=\"%s\" stroke-dasharray=\"4 3\"/>", tx, tx, h-14, ColorLimit)
	fmt.Fprintf(&b, "<text x=\"%.1f\" y=\"%g\" font-size=\"10\" fill=\"#222\">target %s · blue CPU, green memory</text>", labelW, h-3, pct(r.Target))
	b.WriteString("</svg>\n")
	return b.String()
}
