package aggregator

import (
	"math"
	"testing"
	"time"
)

// TestIdleKeyLeavesAtItsLastExpiry feeds key A in every pane and key B in
// the first pane only, flushing after every pane, and checks that B is
// deleted by the first flush whose final edge passes both its ring pane's
// retention and, with rollups on, its bucket's end + grace: not earlier,
// and not later although no flush walks every key. A stays.
func TestIdleKeyLeavesAtItsLastExpiry(t *testing.T) {
	for _, rollups := range []bool{false, true} {
		e, clk := newTestEngine(t, func(c *Config) {
			if rollups {
				c.Rollup = RollupLength
			}
		})
		base := t0.UnixMilli() // a rollup boundary
		// B's only pane starts at base: its ring copy goes once the final
		// edge is past base + retention, its rollup once the edge reaches
		// the bucket's end + grace.
		want := base + e.retainMs + 1
		if rollups {
			want = max(want, base+e.rollMs+e.graceMs)
		}
		want = alignDown(want+e.paneMs-1, e.paneMs) // final edges are pane-aligned
		gone := int64(math.MinInt64)
		for p := int64(0); p < 80; p++ {
			ts := base + p*e.paneMs + 5000
			evs := []ev{{kA, ts, 100, true}}
			if p == 0 {
				evs = append(evs, ev{kB, ts, 200, true})
			}
			e.Ingest(0, p, batchOf(evs...))
			clk.t = time.UnixMilli(ts)
			e.Flush()
			_, end := e.Watermark()
			switch live := e.LiveKeys(); {
			case live == 2 && end >= want:
				t.Fatalf("rollups %v: B still live at final edge %d, due at %d", rollups, end, want)
			case live == 1 && gone == math.MinInt64:
				gone = end
			case live != 1 && live != 2:
				t.Fatalf("rollups %v: %d live keys", rollups, live)
			}
		}
		if gone != want {
			t.Errorf("rollups %v: B deleted at final edge %d, want %d", rollups, gone, want)
		}
		if _, ok := e.Window(kA, time.Minute); !ok {
			t.Errorf("rollups %v: A has no window", rollups)
		}
	}
}
