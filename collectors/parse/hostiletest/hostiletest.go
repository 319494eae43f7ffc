// Package hostiletest is the hostile corpus of log lines the collector
// tests write, in process (collectors/collect) and as processes (e2e):
// lines that must never become a call, each with the counter it raises.
package hostiletest

import (
	"strings"
	"time"

	"github.com/tpflow/tpflow/collectors/parse"
)

// Line is one line of the hostile corpus and the counter it must raise:
// bad_values_total{reason} (its log event flagged with the reason) when Bad
// is set, else unparsed_lines_total{reason} when Unparsed is set.
type Line struct {
	Name      string
	Line      string
	Bad       string // a parse.Reason
	Unparsed  string // a parse.ErrorClass
	Truncated bool   // longer than the collector keeps
}

// Corpus returns the hostile lines; none of them may become a call.
func Corpus() []Line {
	now := time.Now().UTC().Format(time.RFC3339Nano)
	perf := func(ts, method, latency string) string {
		s := `{`
		if ts != "" {
			s += `"ts":` + ts + `,`
		}
		return s + `"method":"` + method + `","latency_ms":` + latency + `,"ok":true}`
	}
	q := func(s string) string { return `"` + s + `"` }
	return []Line{
		{Name: "nul", Line: "\x00\x00\x00" + perf(q(now), "Nul.m", "1"), Unparsed: "syntax"},
		{Name: "nul-in-string", Line: perf(q(now), "Nul\x00.m", "1"), Unparsed: "syntax"},
		{Name: "invalid-utf8", Line: perf(q(now), "Bad\xff\xfe.m", "1"), Unparsed: "invalid_utf8"},
		{Name: "nan", Line: perf(q(now), "NaN.m", q("NaN")), Bad: parse.ReasonNotANumber},
		{Name: "nan-literal", Line: perf(q(now), "NaN.lit", "NaN"), Unparsed: "syntax"},
		{Name: "inf", Line: perf(q(now), "Inf.m", q("-Inf")), Bad: parse.ReasonNotANumber},
		{Name: "negative", Line: perf(q(now), "Neg.m", "-5"), Bad: parse.ReasonNegativeLatency},
		{Name: "overflow", Line: perf(q(now), "Over.m", "1e400"), Bad: parse.ReasonLatencyOverflow},
		{Name: "over-uint32", Line: perf(q(now), "Over.u32", "5e6"), Bad: parse.ReasonLatencyOverflow},
		{Name: "latency-text", Line: perf(q(now), "Text.m", q("fast")), Bad: parse.ReasonInvalidLatency},
		{Name: "status-text", Line: `{"ts":"` + now + `","method":"Status.m","latency_ms":1,"status":"OK"}`, Bad: parse.ReasonInvalidStatus},
		{Name: "1970", Line: perf(q("1970-01-01T00:00:00Z"), "Epoch.m", "1"), Bad: parse.ReasonTooOld},
		{Name: "unix-zero", Line: perf("0", "Epoch.n", "1"), Bad: parse.ReasonTooOld},
		{Name: "2999", Line: perf(q("2999-01-01T00:00:00Z"), "Future.m", "1"), Bad: parse.ReasonTooFarFuture},
		{Name: "unparsable-time", Line: perf(q("yesterday"), "When.m", "1"), Bad: parse.ReasonInvalidTime},
		{Name: "time-1e400", Line: perf("1e400", "When.n", "1"), Bad: parse.ReasonInvalidTime},
		{Name: "no-time", Line: perf("", "NoTime.m", "1"), Bad: parse.ReasonMissingTime},
		{Name: "backslash-method", Line: perf(q(now), `Esc\\'.m`, "1"), Bad: parse.ReasonUnsafeLabel},
		{Name: "newline-method", Line: perf(q(now), `Line\nUNION.m`, "1"), Bad: parse.ReasonUnsafeLabel},
		{Name: "100kB-method", Line: perf(q(now), strings.Repeat("M", 100<<10), "1"), Bad: parse.ReasonMethodTooLong},
		{Name: "10MiB", Line: perf(q(now), "Huge.m", "1")[:len(perf(q(now), "Huge.m", "1"))-1] + `,"pad":"` + strings.Repeat("p", 10<<20) + `"}`,
			Unparsed: "syntax", Truncated: true},
		{Name: "cr-only", Line: "\r", Unparsed: "syntax"},
		{Name: "cr-separated", Line: perf(q(now), "Cr.a", "1") + "\r" + perf(q(now), "Cr.b", "1") + "\r", Unparsed: "syntax"},
		{Name: "deep-nesting", Line: `{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}`, Unparsed: "syntax"},
	}
}

// Want returns the counters that writing corpus rounds times must raise:
// bad values and unparsed lines by reason, and truncated lines.
func Want(corpus []Line, rounds int) (bad, unparsed map[string]int, truncated int) {
	bad, unparsed = map[string]int{}, map[string]int{}
	for _, h := range corpus {
		if h.Bad != "" {
			bad[h.Bad] += rounds
		}
		if h.Unparsed != "" {
			unparsed[h.Unparsed] += rounds
		}
		if h.Truncated {
			truncated += rounds
		}
	}
	return bad, unparsed, truncated
}

// CRIFrame frames line as a container runtime writes it: whole when
// short, else in 16 KiB partial fragments.
func CRIFrame(line string) string {
	const frag = 16 << 10
	ts := time.Now().UTC().Format(time.RFC3339Nano)
	var b strings.Builder
	for len(line) > frag {
		b.WriteString(ts + " stdout P " + line[:frag] + "\n")
		line = line[frag:]
	}
	b.WriteString(ts + " stdout F " + line + "\n")
	return b.String()
}
