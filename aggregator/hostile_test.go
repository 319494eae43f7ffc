package aggregator

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestHostileEventsAmongHonestTraffic mixes 1 % hostile events of every
// class (too old, too far in the future, invalid times: math.MinInt64,
// math.MaxInt64, −1, the year 2999, a client 9 minutes ahead) into honest,
// out-of-order traffic on 8 partitions read by 3 engines, under the shipped
// defaults. Every honest event must be counted exactly in the stored panes,
// every hostile one under its reason (in IngestStats and the metric), and
// every honest key's TP99 over the run within 1 % of the exact value.
func TestHostileEventsAmongHonestTraffic(t *testing.T) {
	const parts, members, nkeys, steps, perBatch = 8, 3, 40, 300, 50
	clk := &clock{t: t0}
	engines := make([]*Engine, members)
	regs := make([]*prometheus.Registry, members)
	for i := range engines {
		regs[i] = prometheus.NewRegistry()
		e, err := New(DefaultConfig(), WithClock(clk.now), WithRegisterer(regs[i]))
		if err != nil {
			t.Fatal(err)
		}
		engines[i] = e
	}
	keys := make([]Key, nkeys)
	for i := range keys {
		keys[i] = Key{System: "shop", App: fmt.Sprint("app", i%5), Group: "g", IDC: "bj", Method: fmt.Sprint("M", i)}
	}
	r := rand.New(rand.NewPCG(12, 12))
	honest := make([][]uint32, nkeys)
	var wantRejected [NumReasons]int
	var gotRejected [NumReasons]int
	store := replacing{}
	var offsets [parts]int64
	hostileTs := func(now int64) (int64, Reason) {
		switch r.IntN(7) {
		case 0:
			return now - 8*24*3600*1000, ReasonTooOld
		case 1:
			return now + 9*60*1000, ReasonTooFarFuture
		case 2:
			return now + 365*24*3600*1000, ReasonTooFarFuture
		case 3:
			return math.MinInt64, ReasonInvalidTime
		case 4:
			return math.MaxInt64, ReasonInvalidTime
		case 5:
			return -1, ReasonInvalidTime
		}
		return time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), ReasonInvalidTime
	}
	flush := func() {
		for _, e := range engines {
			res := e.FlushAll()
			if len(res.Late) != 0 {
				t.Fatalf("%d honest events handed to the late path: %+v", len(res.Late), res.Late[0])
			}
			store.add(res.Panes...)
		}
	}
	for s := 0; s < steps; s++ {
		clk.t = t0.Add(time.Duration(s) * time.Second)
		now := clk.t.UnixMilli()
		for p := range parts {
			var evs []ev
			for range perBatch {
				// Keys live on the partition their index hashes to.
				k := p + parts*r.IntN(nkeys/parts)
				lat := uint32(max(1, math.Exp(6+1.1*r.NormFloat64())))
				if r.IntN(100) == 0 {
					ts, why := hostileTs(now)
					wantRejected[why]++
					evs = append(evs, ev{keys[k], ts, lat, true})
					continue
				}
				honest[k] = append(honest[k], lat)
				evs = append(evs, ev{keys[k], now - int64(r.IntN(5000)), lat, r.IntN(50) > 0})
			}
			e := engines[p%members]
			e.HighWaterMark(int32(p), offsets[p]+1)
			st := e.Ingest(int32(p), offsets[p], batchOf(evs...))
			offsets[p]++
			for _, why := range Reasons {
				gotRejected[why] += st.Rejected[why]
			}
			if st.Late+st.LateOut != 0 {
				t.Fatalf("step %d: honest events late: %+v", s, st)
			}
		}
		flush()
	}
	clk.t = clk.t.Add(10 * time.Minute)
	flush()

	for _, why := range Reasons {
		if wantRejected[why] == 0 {
			t.Fatalf("no %s events: the test data must hold every class", why)
		}
		if gotRejected[why] != wantRejected[why] {
			t.Errorf("%s: %d rejected, %d injected", why, gotRejected[why], wantRejected[why])
		}
		var metric float64
		for _, reg := range regs {
			n, err := testutil.GatherAndCount(reg, "tpflow_aggregate_rejected_events_total")
			if err != nil || n != len(Reasons) {
				t.Fatalf("rejected_events_total: %d series, %v", n, err)
			}
		}
		for _, e := range engines {
			metric += testutil.ToFloat64(e.m.rejected[why])
		}
		if int(metric) != wantRejected[why] {
			t.Errorf("tpflow_aggregate_rejected_events_total{reason=%q} = %v, want %d", why, metric, wantRejected[why])
		}
	}
	for i, k := range keys {
		var cents []Centroid
		var count uint64
		lo, hi := uint32(math.MaxUint32), uint32(0)
		for id, ps := range store {
			if id.key != k {
				continue
			}
			count += ps.Count
			cents = append(cents, ps.Centroids...)
			lo, hi = min(lo, ps.MinUs), max(hi, ps.MaxUs)
		}
		if count != uint64(len(honest[i])) {
			t.Errorf("%v: %d events stored, %d honest ones sent", k.Method, count, len(honest[i]))
			continue
		}
		sortCentroids(cents)
		slices.Sort(honest[i])
		got, want := quantile(cents, float64(lo), float64(hi), 0.99), exactQuantile(honest[i], 0.99)
		if relErr(got, want) > 0.01 {
			t.Errorf("%v: TP99 %v, exact %v", k.Method, got, want)
		}
	}
}
