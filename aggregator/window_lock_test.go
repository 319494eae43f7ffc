package aggregator

import (
	"fmt"
	"testing"
	"time"
)

// TestWindowsComputesWithoutTheLock runs a windows query over 3 000 keys
// and, while it computes quantiles, ingests and flushes: both must finish
// before the query is let go, and the query must still report every key
// with its exact count.
func TestWindowsComputesWithoutTheLock(t *testing.T) {
	e, clk := newTestEngine(t, nil)
	base := t0.UnixMilli()
	const n = 3000
	var evs []ev
	for i := range n {
		k := Key{System: "s", App: "a", Group: "g", IDC: "i", Method: fmt.Sprint("m", i)}
		for j := range 1 + i%5 {
			evs = append(evs, ev{k, base + int64(j)*100, uint32(100 + j), true})
		}
	}
	e.Ingest(0, 0, batchOf(evs...))
	clk.t = t0.Add(2 * time.Minute) // idle: everything final
	if ps, _ := e.Flush(); len(ps) != n {
		t.Fatalf("flushed %d panes, want %d", len(ps), n)
	}

	inside, release := make(chan struct{}), make(chan struct{})
	first := true
	testHookWindowsUnlocked = func() {
		if first {
			first = false
			close(inside)
			<-release
		}
	}
	defer func() { testHookWindowsUnlocked = nil }()
	done := make(chan []Window)
	go func() { done <- e.Windows(nil, 5*time.Minute) }()
	select {
	case <-inside:
	case <-time.After(10 * time.Second):
		t.Fatal("the windows query never computed with the lock released")
	}
	ingested := make(chan IngestStats)
	go func() {
		st := e.Ingest(0, 1, batchOf(ev{Key{System: "s", App: "a", Method: "new"}, base + 100_000, 5, true}))
		e.Flush()
		ingested <- st
	}()
	select {
	case st := <-ingested:
		if st.Accepted != 1 {
			t.Errorf("ingest during the query accepted %d, want 1", st.Accepted)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Ingest blocked while the windows query computed")
	}
	close(release)
	var got []Window
	select {
	case got = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the windows query did not finish")
	}
	if len(got) != n {
		t.Fatalf("windows for %d keys, want %d", len(got), n)
	}
	for _, kw := range got {
		var i int
		if _, err := fmt.Sscanf(kw.Key.Method, "m%d", &i); err != nil {
			t.Fatalf("unexpected key %v", kw.Key)
		}
		if kw.Count != uint64(1+i%5) || kw.MinUs != 100 || kw.P50 == 0 {
			t.Fatalf("window of %v: count %d min %d p50 %v, want count %d min 100", kw.Key, kw.Count, kw.MinUs, kw.P50, 1+i%5)
		}
	}
}
