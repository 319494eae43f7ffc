package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tpflow/tpflow/pipeline/httpapi"
)

// liveTop is how many methods the live view shows.
const liveTop = 20

// liveView renders the slowest methods by TP99 to a writer: a full-screen
// table redrawn in place on a terminal (ANSI clear + home), one summary line
// per refresh otherwise. It is not safe for concurrent use.
type liveView struct {
	w      io.Writer
	ansi   bool
	window string // "1m", shown in the title
	b      strings.Builder
}

// isTerminal reports whether w is a character device, such as a terminal.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// render draws one refresh. ws must be sorted by TP99, slowest first
// (httpapi.SortByP99); status is a short line about the pipeline (rates,
// lag, sink state) shown under the title.
func (v *liveView) render(now time.Time, ws []httpapi.Window, status string) error {
	v.b.Reset()
	if !v.ansi {
		v.renderLine(now, ws, status)
	} else {
		v.renderTable(now, ws, status)
	}
	_, err := io.WriteString(v.w, v.b.String())
	return err
}

// ms prints a latency in µs as milliseconds with a precision that suits it.
func ms(us float64) string {
	m := us / 1000
	switch {
	case m >= 100:
		return fmt.Sprintf("%.0f", m)
	case m >= 10:
		return fmt.Sprintf("%.1f", m)
	}
	return fmt.Sprintf("%.2f", m)
}

// clip shortens s to n runes, marking the cut with "…".
func clip(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

func (v *liveView) renderTable(now time.Time, ws []httpapi.Window, status string) {
	b := &v.b
	b.WriteString("\x1b[H\x1b[2J") // home, clear screen
	fmt.Fprintf(b, "tpflow — slowest methods by TP99 over the last %s    %s\n", v.window, now.Format("15:04:05"))
	if status != "" {
		b.WriteString(status + "\n")
	}
	b.WriteString("\n")
	fmt.Fprintf(b, "%-22s %-24s %-16s %9s %6s %9s %9s %9s %9s\n",
		"APP", "METHOD", "GROUP", "QPS", "ERR%", "TP50 ms", "TP90 ms", "TP99 ms", "TP999 ms")
	if len(ws) == 0 {
		b.WriteString("(waiting for the first final pane: panes close after pane + allowed lateness)\n")
	}
	for i, w := range ws {
		if i == liveTop {
			break
		}
		// Groups are usually named after their app; the rest says which.
		group := strings.TrimPrefix(w.Group, w.App+"-")
		fmt.Fprintf(b, "%-22s %-24s %-16s %9.1f %6.2f %9s %9s %9s %9s\n",
			clip(w.App, 22), clip(w.Method, 24), clip(group, 16), w.QPS, w.ErrorRate*100,
			ms(w.P50Us), ms(w.P90Us), ms(w.P99Us), ms(w.P999Us))
	}
	if len(ws) > 0 {
		fmt.Fprintf(b, "\n%d keys; window %s – %s\n", len(ws), ws[0].Start.Local().Format("15:04:05"), ws[0].End.Local().Format("15:04:05"))
	}
	b.WriteString("Ctrl-C stops and flushes.\n")
}

// renderLine writes one line: the time, the number of keys and the three
// slowest methods with their TP99.
func (v *liveView) renderLine(now time.Time, ws []httpapi.Window, status string) {
	b := &v.b
	fmt.Fprintf(b, "%s window=%s keys=%d", now.Format(time.RFC3339), v.window, len(ws))
	if status != "" {
		b.WriteString(" " + status)
	}
	if len(ws) > 0 {
		b.WriteString(" slowest:")
	}
	for i, w := range ws {
		if i == 3 {
			break
		}
		fmt.Fprintf(b, " %s/%s tp99=%sms qps=%.1f err=%.2f%%", w.App, w.Method, ms(w.P99Us), w.QPS, w.ErrorRate*100)
	}
	b.WriteString("\n")
}
