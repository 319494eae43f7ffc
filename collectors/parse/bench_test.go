package parse

import (
	"testing"
)

// BenchmarkPerfJSON measures the hot path: one perf-json line parsed and
// mapped into a Call.
func BenchmarkPerfJSON(b *testing.B) {
	lp, err := New(DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	lines := [][]byte{
		[]byte(`{"ts":"2026-11-27T10:00:00.123Z","app":"cart","method":"CartService.add","latency_ms":12.5,"ok":true}` + "\n"),
		[]byte(`{"ts":1795773600123,"system":"mall","app":"cart","group":"g1","idc":"lf","method":"CartService.remove","latency_us":812,"status":200}` + "\n"),
	}
	var c Call
	b.ReportAllocs()
	b.SetBytes(int64(len(lines[0])+len(lines[1])) / 2)
	i := 0
	for b.Loop() {
		if err := lp.ParseCall(lines[i&1], &c); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkNginx measures the nginx preset (regular expression).
func BenchmarkNginx(b *testing.B) {
	cfg, _ := PresetConfig(FormatNginx)
	benchParseCall(b, cfg, []byte(nginxLine))
}

// BenchmarkLogfmt measures logfmt with the perf mapping.
func BenchmarkLogfmt(b *testing.B) {
	cfg := DefaultConfig()
	cfg.Format = FormatLogfmt
	benchParseCall(b, cfg, []byte(`ts=2026-11-27T10:00:00.123Z app=cart method=CartService.add latency_ms=12.5 ok=true msg="added item"`))
}

// benchParseCall measures parsing line into a Call with cfg.
func benchParseCall(b *testing.B, cfg Config, line []byte) {
	lp, err := New(cfg)
	if err != nil {
		b.Fatal(err)
	}
	var c Call
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		if err := lp.ParseCall(line, &c); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCRIJoin measures CRI parsing and joining of whole lines.
func BenchmarkCRIJoin(b *testing.B) {
	line := []byte(`2026-11-27T10:00:00.123456789Z stdout F {"ts":1795773600123,"method":"m","latency_ms":1}` + "\n")
	j := NewJoiner(1 << 20)
	b.ReportAllocs()
	b.SetBytes(int64(len(line)))
	for b.Loop() {
		l, err := ParseCRI(line)
		if err != nil {
			b.Fatal(err)
		}
		j.Add(l.Log, l.Partial)
	}
}
