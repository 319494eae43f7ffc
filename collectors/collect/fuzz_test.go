package collect

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/tpflow/tpflow/collectors/logtail"
	"github.com/tpflow/tpflow/collectors/parse"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas/codec"
)

// FuzzFileLines feeds arbitrary lines through a file's whole path — CRI or
// Docker unwrapping, partial joining, multi-line records, perf-json
// parsing, mapping and encoding — and checks that no line fails the
// handler or panics, that every cut batch decodes, and that acks never go
// past the line handed over.
func FuzzFileLines(f *testing.F) {
	f.Add([]byte("2026-11-27T10:00:00Z stdout P {\"method\":\"m\","), []byte(`{"log":"x\n","stream":"stdout","time":"2026-11-27T10:00:00Z"}`), uint8(0))
	f.Add([]byte(`{"ts":"2026-11-27T10:00:00Z","method":"m","latency_ms":1}`), []byte("\tat x"), uint8(1))
	f.Add([]byte("\xff\xfe\x00"), []byte("2026-11-27 10:00:00 start"), uint8(2))
	f.Fuzz(func(t *testing.T, a, b []byte, mode uint8) {
		cfg := DefaultConfig()
		cfg.Host = "h"
		cfg.Batch.MaxEvents = 3
		cfg.Batch.MaxInFlight = 1
		container := []string{ContainerCRI, ContainerDocker, ContainerNone}[int(mode)%3]
		cfg.Sources = []Source{{Name: "s", Globs: []string{"/x/*.log"}, Container: container,
			Multiline: parse.MultilineConfig{Start: `^\d{4}-`, Timeout: time.Millisecond, MaxLines: 3}}}
		ag, err := New(cfg, kafka.DefaultConfig(), role.Settings{})
		if err != nil {
			t.Fatal(err)
		}
		ag.readCtx = context.Background()
		ag.b = newBatcher(cfg.Batch, 3, "p", "h")
		fs := ag.newFileState(ag.srcs[0], logtail.Target{Path: filepath.Join("/x", "a.log")})
		drain := func() {
			for {
				select {
				case sb := <-ag.b.q:
					for _, m := range append(sb.calls, sb.logs...) {
						var cb codec.Batch
						if err := codec.Decode(m.Value, &cb); err != nil {
							t.Fatalf("cut batch does not decode: %v", err)
						}
						if _, err := cb.Full(); err != nil {
							t.Fatalf("cut batch does not decode: %v", err)
						}
					}
				default:
					return
				}
			}
		}
		id := logtail.Identity{Dev: 1, Ino: 2, FP: 3, FPLen: 10}
		var off int64
		for i, data := range [][]byte{a, b, a, b} {
			l := logtail.Line{Path: "/x/a.log", ID: id, Offset: off, End: off + int64(len(data)) + 1, Data: data, Partial: i == 3}
			off = l.End
			if err := fs.handle(l); err != nil {
				t.Fatalf("handle: %v", err)
			}
			if k, ok := ag.b.ackOf[fs]; ok && ag.b.acks[k].off > l.End {
				t.Fatalf("ack %d past the line end %d", ag.b.acks[k].off, l.End)
			}
			drain()
		}
		if err := fs.poll(); err != nil {
			t.Fatal(err)
		}
		if err := ag.b.cut(context.Background()); err != nil {
			t.Fatal(err)
		}
		drain()
	})
}
