package late

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"os"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus/testutil"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest/chdb"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

func TestMain(m *testing.M) { os.Exit(chtest.RunMain(m)) }

var (
	t0   = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)
	keyA = aggregator.Key{System: "s", App: "a", Group: "g", IDC: "i", Method: "ma"}
	keyB = aggregator.Key{System: "s", App: "b", Group: "g", IDC: "i", Method: "mb"}
)

// lateEv is a late event read from calls partition 2 at offset.
func lateEv(k aggregator.Key, ts time.Time, lat uint32, ok, rollup bool, offset int64) aggregator.LateEvent {
	return aggregator.LateEvent{Key: k, TsUnixMs: ts.UnixMilli(), LatencyUs: lat, OK: ok, Rollup: rollup, Partition: 2, Offset: offset}
}

// TestEncodeRoundTrip encodes late events of many keys with a small
// message limit: every message stays under it, holds only events whose key
// belongs on its partition, never shares the events of one key and calls
// message with another, and decoding gives every event back with its key,
// time, latency, status, rollup flag and source.
func TestEncodeRoundTrip(t *testing.T) {
	const maxBytes, parts = 2 << 10, 3
	var evs []aggregator.LateEvent
	for i := range 500 {
		k := aggregator.Key{System: "s", App: fmt.Sprint("app", i/50%7), Group: "g", IDC: "i", Method: fmt.Sprint("m", i/50%11)}
		e := lateEv(k, t0.Add(time.Duration(i)*time.Millisecond), uint32(i), i%3 != 0, i%2 == 0, int64(i/10))
		e.Status = uint32(i % 5)
		evs = append(evs, e)
	}
	msgs := Encode(evs, maxBytes, parts)
	if len(msgs) < 3 {
		t.Fatalf("%d messages: not cut", len(msgs))
	}
	seen := 0
	var b codec.Batch
	type source struct {
		k   aggregator.Key
		off int64
	}
	msgOf := map[source]int{}
	for mi, m := range msgs {
		if len(m.Value) > maxBytes+1024 {
			t.Errorf("message of %d bytes, limit %d", len(m.Value), maxBytes)
		}
		if err := codec.Decode(m.Value, &b); err != nil {
			t.Fatal(err)
		}
		part := kafka.PartitionOf(m.Key, parts)
		for _, ev := range decodeEvents(nil, &b) {
			i := int(ev.call.TsUnixMs - t0.UnixMilli())
			src := evs[i]
			if ev.key != src.Key || ev.call.LatencyUs != src.LatencyUs || ev.call.OK != src.OK || ev.call.Status != src.Status ||
				ev.rollup != src.Rollup || !ev.src || ev.partition != 2 || ev.offset != src.Offset {
				t.Fatalf("event %d came back as %+v", i, ev)
			}
			if p := kafka.PartitionOf(kafka.CallKey(ev.key.System, ev.key.App, ev.key.Method), parts); p != part {
				t.Fatalf("event of %v belongs on partition %d, its message on %d", ev.key, p, part)
			}
			if prev, ok := msgOf[source{ev.key, ev.offset}]; ok && prev != mi {
				t.Fatalf("events of %v at offset %d are in messages %d and %d", ev.key, ev.offset, prev, mi)
			}
			msgOf[source{ev.key, ev.offset}] = mi
			seen++
		}
	}
	if seen != len(evs) {
		t.Fatalf("decoded %d events, encoded %d", seen, len(evs))
	}
}

// testMerger returns a merger over a fresh database of the shared server.
func testMerger(t *testing.T) (*merger, driver.Conn, clickhouse.Config, *clickhouse.Writer) {
	t.Helper()
	conn, ccfg := chdb.Shared(t)
	m, err := newMetrics(nil)
	if err != nil {
		t.Fatal(err)
	}
	w := clickhouse.NewWriter(conn, ccfg, nil)
	cfg := Config{GroupID: "g-late", SinkGroupID: "g", Aggregator: aggregator.DefaultConfig()}
	return newMerger(cfg, chStore{conn: conn, w: w, database: ccfg.Database}, nil, m, slog.New(slog.DiscardHandler)), conn, ccfg, w
}

// lateMessage encodes evs into one message read at partition/offset.
func lateMessage(t *testing.T, partition int, offset int64, evs ...aggregator.LateEvent) kafkago.Message {
	t.Helper()
	msgs := Encode(evs, 1<<20, 1)
	if len(msgs) != 1 {
		t.Fatalf("%d messages, want 1", len(msgs))
	}
	msgs[0].Partition, msgs[0].Offset = partition, offset
	return msgs[0]
}

func stored(t *testing.T, conn driver.Conn, db string, rollups bool, k aggregator.Key, start time.Time) (clickhouse.MergedPane, bool) {
	t.Helper()
	id := clickhouse.PaneID{System: k.System, App: k.App, Group: k.Group, IDC: k.IDC, Method: k.Method, Start: start.Unix()}
	got, err := clickhouse.QueryMergedPanes(context.Background(), conn, db, rollups, []clickhouse.PaneID{id})
	if err != nil {
		t.Fatal(err)
	}
	r, ok := got[id]
	return r, ok
}

// TestMergeIntoStoredPaneExactlyOnce stores a pane and a rollup as the sink
// does, merges a late message into them, delivers the same message again,
// then the same events in another message (a produce retried after it had
// in fact been stored), then a newer message, and finally lets a replayed
// aggregator pane arrive: the counts are exact after every step, the
// duplicates change nothing, and the replay does not replace the merged
// row.
func TestMergeIntoStoredPaneExactlyOnce(t *testing.T) {
	h, conn, ccfg, w := testMerger(t)
	ctx := context.Background()
	row := clickhouse.PaneRow{PaneStart: t0, PaneSeconds: 10, System: "s", App: "a", Group: "g", IDC: "i", Method: "ma",
		Count: 3, Errors: 1, SumUs: 600, MinUs: 100, MaxUs: 300, P50Us: 200, P90Us: 300, P99Us: 300, P999Us: 300,
		CentroidMeans: []float64{100, 200, 300}, CentroidWeights: []float64{1, 1, 1}, Version: 3}
	roll := row
	roll.PaneSeconds = 300
	if err := w.WritePanes(ctx, []clickhouse.PaneRow{row}); err != nil {
		t.Fatal(err)
	}
	if err := w.WriteRollups(ctx, []clickhouse.PaneRow{roll}); err != nil {
		t.Fatal(err)
	}
	evs := []aggregator.LateEvent{
		lateEv(keyA, t0.Add(time.Second), 50, true, true, 7),
		lateEv(keyA, t0.Add(2*time.Second), 400, false, true, 7),
		lateEv(keyB, t0.Add(15*time.Second), 70, true, false, 7),
	}
	check := func(step string, rollups bool, k aggregator.Key, start time.Time, count, errs uint64, minUs, maxUs float64, off int64) {
		t.Helper()
		r, ok := stored(t, conn, ccfg.Database, rollups, k, start)
		if !ok {
			t.Fatalf("%s: no stored row of %v@%s (rollup %v)", step, k, start, rollups)
		}
		var w float64
		for _, x := range r.CentroidWeights {
			w += x
		}
		if r.Count != count || r.Errors != errs || r.MinUs != minUs || r.MaxUs != maxUs || w != float64(count) ||
			r.Version != VersionBit|count || r.LatePartition != 2 || r.LateOffset != off {
			t.Fatalf("%s: %v@%s (rollup %v) stored as count %d errors %d min %g max %g weight %g version %x mark %d/%d;"+
				" want count %d errors %d min %g max %g, version bit|count, mark 2/%d",
				step, k, start, rollups, r.Count, r.Errors, r.MinUs, r.MaxUs, w, r.Version, r.LatePartition, r.LateOffset, count, errs, minUs, maxUs, off)
		}
	}
	for i, step := range []string{"first delivery", "redelivery", "produced twice"} {
		msg := lateMessage(t, 0, 40, evs...)
		if i == 2 {
			msg = lateMessage(t, 0, 41, evs...)
		}
		if err := h.handle(ctx, msg); err != nil {
			t.Fatal(err)
		}
		check(step, false, keyA, t0, 5, 2, 50, 400, 7)
		check(step, true, keyA, t0, 5, 2, 50, 400, 7)
		check(step, false, keyB, t0.Add(10*time.Second), 1, 0, 70, 70, 7)
		if _, ok := stored(t, conn, ccfg.Database, true, keyB, t0); ok {
			t.Fatalf("%s: a rollup of %v written for events the engine's bucket holds", step, keyB)
		}
	}
	if got := testutil.ToFloat64(h.m.skipped); got != 10 {
		t.Errorf("duplicate events skipped: %v, want 10 (2 × pane, rollup and pane of A, pane of B)", got)
	}
	if got := testutil.ToFloat64(h.m.paneEvents); got != 3 {
		t.Errorf("pane events merged: %v, want 3", got)
	}
	// A newer message repeats the last event of offset 7 (a duplicate
	// within a message) and brings one of offset 8.
	if err := h.handle(ctx, lateMessage(t, 0, 42, evs[1], lateEv(keyA, t0.Add(3*time.Second), 250, true, true, 8))); err != nil {
		t.Fatal(err)
	}
	check("next message", false, keyA, t0, 6, 2, 50, 400, 8)
	check("next message", true, keyA, t0, 6, 2, 50, 400, 8)
	// An aggregator restarted from old offsets publishes a partial copy
	// of the pane: it must not replace the merged row.
	replay := row
	replay.Count, replay.Version = 5, 5
	if err := w.WritePanes(ctx, []clickhouse.PaneRow{replay}); err != nil {
		t.Fatal(err)
	}
	check("replayed pane", false, keyA, t0, 6, 2, 50, 400, 8)
}

// TestInvalidTimesAreCountedNotMerged sends late events dated before 1970
// and after 2106, and events without a source (not from an aggregator),
// next to a good one: the good one is merged, the others are counted, and
// nothing stops.
func TestInvalidTimesAreCountedNotMerged(t *testing.T) {
	h, conn, ccfg, _ := testMerger(t)
	msg := lateMessage(t, 0, 1,
		aggregator.LateEvent{Key: keyA, TsUnixMs: math.MinInt64, LatencyUs: 1, OK: true, Rollup: true},
		aggregator.LateEvent{Key: keyA, TsUnixMs: -1, LatencyUs: 1, OK: true},
		aggregator.LateEvent{Key: keyA, TsUnixMs: math.MaxInt64, LatencyUs: 1, OK: true, Rollup: true},
		aggregator.LateEvent{Key: keyA, TsUnixMs: int64(math.MaxUint32) * 1000, LatencyUs: 1, OK: true},
		lateEv(keyA, t0, 9, true, true, 3))
	if err := h.handle(context.Background(), msg); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(h.m.invalid); got != 4 {
		t.Errorf("invalid-time events counted: %v, want 4", got)
	}
	// Calls without the source labels, and with malformed ones.
	var b codec.Builder
	for _, extra := range [][]schemas.Label{nil, {{Name: SourcePartitionLabel, Value: "x"}, {Name: SourceOffsetLabel, Value: "1"}},
		{{Name: SourcePartitionLabel, Value: "1"}, {Name: SourceOffsetLabel, Value: "-5"}}} {
		ls := b.LabelSet(append([]schemas.Label{{Name: schemas.LabelSystem, Value: "s"}, {Name: schemas.LabelApp, Value: "a"},
			{Name: schemas.LabelGroup, Value: "g"}, {Name: schemas.LabelIDC, Value: "i"}}, extra...))
		b.AddCall(codec.Call{TsUnixMs: t0.UnixMilli(), Series: b.Series(ls, "ma"), LatencyUs: 5, OK: true})
	}
	if err := h.handle(context.Background(), kafkago.Message{Partition: 0, Offset: 2, Value: b.AppendTo(nil)}); err != nil {
		t.Fatal(err)
	}
	if got := testutil.ToFloat64(h.m.noSource); got != 3 {
		t.Errorf("events without a source counted: %v, want 3", got)
	}
	if r, ok := stored(t, conn, ccfg.Database, false, keyA, t0); !ok || r.Count != 1 {
		t.Errorf("good event stored as %+v (found %v), want count 1", r, ok)
	}
}
