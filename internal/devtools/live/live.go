// Package live is the live view of `tpflow run`: the slowest methods by
// TP99 and the firing alerts, redrawn every pane on a terminal or printed
// as one line per refresh.
package live

import (
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/windowsapi"
	"github.com/tpflow/tpflow/alerting"
	"github.com/tpflow/tpflow/internal/config"
)

// liveTop is how many methods the live view shows.
const liveTop = 20

// View renders the slowest methods by TP99 to a writer: a full-screen
// table redrawn in place on a terminal (ANSI clear + home), one summary line
// per refresh otherwise. It is not safe for concurrent use.
type View struct {
	W      io.Writer
	ANSI   bool   // redraw a table in place rather than print lines
	Window string // "1m", shown in the title
	// Alerting says whether an alert role runs: then the firing alerts
	// are shown, or that there are none.
	Alerting bool
	b        strings.Builder
}

// IsTerminal reports whether w is a character device, such as a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// Render draws one refresh. ws must be sorted by TP99, slowest first
// (windowsapi.SortByP99); status is a short line about the pipeline (rates,
// lag, sink state) shown under the title; alerts are the alert role's
// alerts, of which the firing ones are shown.
func (v *View) Render(now time.Time, ws []aggregator.Window, alerts []alerting.Alert, status string) error {
	v.b.Reset()
	var firing []alerting.Alert
	for _, a := range alerts {
		if a.State == alerting.StateFiring {
			firing = append(firing, a)
		}
	}
	if !v.ANSI {
		v.renderLine(now, ws, firing, status)
	} else {
		v.renderTable(now, ws, firing, status)
	}
	_, err := io.WriteString(v.W, v.b.String())
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

// alertLabels prints an alert's labels but alertname as {k="v",...},
// sorted by name.
func alertLabels(a alerting.Alert) string {
	var b strings.Builder
	b.WriteString("{")
	for _, k := range slices.Sorted(maps.Keys(a.Labels)) {
		if k == "alertname" {
			continue
		}
		if b.Len() > 1 {
			b.WriteString(",")
		}
		fmt.Fprintf(&b, "%s=%q", k, a.Labels[k])
	}
	b.WriteString("}")
	return b.String()
}

func (v *View) renderTable(now time.Time, ws []aggregator.Window, firing []alerting.Alert, status string) {
	b := &v.b
	b.WriteString("\x1b[H\x1b[2J") // home, clear screen
	fmt.Fprintf(b, "tpflow — slowest methods by TP99 over the last %s    %s\n", v.Window, now.Format("15:04:05"))
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
		group := strings.TrimPrefix(w.Key.Group, w.Key.App+"-")
		fmt.Fprintf(b, "%-22s %-24s %-16s %9.1f %6.2f %9s %9s %9s %9s\n",
			clip(w.Key.App, 22), clip(w.Key.Method, 24), clip(group, 16), w.QPS, w.ErrorRate*100,
			ms(w.P50), ms(w.P90), ms(w.P99), ms(w.P999))
	}
	if len(ws) > 0 {
		fmt.Fprintf(b, "\n%d keys; window %s – %s\n", len(ws), time.UnixMilli(ws[0].Start).Local().Format("15:04:05"), time.UnixMilli(ws[0].End).Local().Format("15:04:05"))
	}
	if v.Alerting {
		if len(firing) == 0 {
			b.WriteString("\nFiring alerts: none\n")
		} else {
			fmt.Fprintf(b, "\nFiring alerts: %d\n%-24s %10s %-9s %s\n", len(firing), "RULE", "VALUE", "SINCE", "LABELS")
		}
		for _, a := range firing {
			fmt.Fprintf(b, "%-24s %10.4g %-9s %s\n", clip(a.Rule, 24), a.Value, a.FiredAt.Local().Format("15:04:05"), alertLabels(a))
		}
	}
	b.WriteString("Ctrl-C stops and flushes.\n")
}

// renderLine writes one line: the time, the number of keys and the three
// slowest methods with their TP99, then every firing alert.
func (v *View) renderLine(now time.Time, ws []aggregator.Window, firing []alerting.Alert, status string) {
	b := &v.b
	fmt.Fprintf(b, "%s window=%s keys=%d", now.Format(time.RFC3339), v.Window, len(ws))
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
		fmt.Fprintf(b, " %s/%s tp99=%sms qps=%.1f err=%.2f%%", w.Key.App, w.Key.Method, ms(w.P99), w.QPS, w.ErrorRate*100)
	}
	if v.Alerting {
		fmt.Fprintf(b, " firing=%d", len(firing))
	}
	for _, a := range firing {
		fmt.Fprintf(b, " alert=%s%s value=%.4g since=%s", a.Rule, alertLabels(a), a.Value, a.FiredAt.Format(time.RFC3339))
	}
	b.WriteString("\n")
}

// Run refreshes view once per pane of acfg until ctx is done, with the
// windows of src over WindowOf(acfg.Windows) and the alerts.
func Run(ctx context.Context, view *View, src windowsapi.WindowSource, alerts func() []alerting.Alert, acfg aggregator.Config, status func(time.Time) string) error {
	d := WindowOf(acfg.Windows)
	t := time.NewTicker(acfg.Pane)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case now := <-t.C:
			ws := src.Windows(nil, d)
			windowsapi.SortByP99(ws)
			if err := view.Render(now, ws, alerts(), status(now)); err != nil {
				return fmt.Errorf("cannot write the live view: %w", err)
			}
		}
	}
}

// WindowOf is the window the live view shows of the configured ones: 1m
// when configured, else the shortest.
func WindowOf(ws []time.Duration) time.Duration {
	if slices.Contains(ws, time.Minute) || len(ws) == 0 {
		return time.Minute
	}
	return slices.Min(ws)
}

// WindowName names WindowOf(ws) as the windows API does ("1m").
func WindowName(ws []time.Duration) string {
	return config.FormatDuration(WindowOf(ws))
}
