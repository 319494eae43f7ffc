package logtail

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// benchLine is a typical structured log line of 120 bytes with its newline.
var benchLine = `{"ts":"2026-11-27T17:51:28.123Z","level":"info","method":"GET /api/v1/cart","status":200,"dur_ms":12}` + strings.Repeat(" ", 17) + "\n"

// BenchmarkReadLines reads a 100 000-line file from 0 through one Tailer
// step: the splitting, offsets and handler call without file events.
func BenchmarkReadLines(b *testing.B) {
	const n = 100_000
	p := filepath.Join(b.TempDir(), "app.log")
	if err := os.WriteFile(p, []byte(strings.Repeat(benchLine, n)), 0o644); err != nil {
		b.Fatal(err)
	}
	cfg := DefaultConfig()
	cfg.Start = StartBeginning
	var lines int
	h := func(Line) error { lines++; return nil }
	b.ReportAllocs()
	b.SetBytes(int64(n * len(benchLine)))
	for b.Loop() {
		lines = 0
		tl, err := NewTailer(p, cfg, nil, h, nil)
		if err != nil {
			b.Fatal(err)
		}
		if err := tl.step(true); err != nil {
			b.Fatal(err)
		}
		tl.closeAll()
		if lines != n {
			b.Fatalf("%d lines, want %d", lines, n)
		}
	}
	b.ReportMetric(float64(n)*float64(b.N)/b.Elapsed().Seconds(), "lines/s")
}

// BenchmarkFollow runs a Tailer behind a writer that appends 32 lines per
// write, so lines go through file events, a stat, a fingerprint check and a
// read. ns/op is the writer's; lines/s counts until the tailer has handed
// over the last line.
func BenchmarkFollow(b *testing.B) {
	p := filepath.Join(b.TempDir(), "app.log")
	chunk := []byte(strings.Repeat(benchLine, 32))
	w, err := os.Create(p)
	if err != nil {
		b.Fatal(err)
	}
	defer w.Close()
	cfg := DefaultConfig()
	cfg.Start = StartBeginning
	var lines atomic.Int64
	tl, err := NewTailer(p, cfg, nil, func(Line) error { lines.Add(1); return nil }, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tl.Run(ctx) }()
	b.SetBytes(int64(len(chunk)))
	b.ReportAllocs()
	var want int64
	began := time.Now()
	for b.Loop() {
		if _, err := w.Write(chunk); err != nil {
			b.Fatal(err)
		}
		want += 32
	}
	for lines.Load() < want {
		time.Sleep(100 * time.Microsecond)
	}
	// Until the last line is handed over, not only written.
	b.ReportMetric(float64(want)/time.Since(began).Seconds(), "lines/s")
	cancel()
	if err := <-done; err != nil {
		b.Fatal(err)
	}
}
