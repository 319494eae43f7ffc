package e2e

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"regexp"
	"slices"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/internal/devtools/loadgen"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// callsGeneration matches an aggregator's log line for a generation of the
// calls group; its groups are the generation and the partitions.
var callsGeneration = regexp.MustCompile(`msg="consumer group generation started" .*?group=tpflow-aggregate topic=\S*calls generation=(\d+) partitions="?\[([\d ]*)\]`)

// lastGeneration returns the last calls generation the process logged and
// its partition list ("" when it owns none, or before any).
func lastGeneration(p *proc) (gen, parts string) {
	b, _ := os.ReadFile(p.log)
	ms := callsGeneration.FindAllSubmatch(b, -1)
	if len(ms) == 0 {
		return "", ""
	}
	last := ms[len(ms)-1]
	return string(last[1]), string(last[2])
}

// TestHostileEventsThreeAggregators is aggregator's
// TestHostileEventsAmongHonestTraffic with real processes: three `tpflow
// aggregate` members of one group share the 8 calls partitions (the
// shipped defaults, only addresses set), with sink and ClickHouse. Calls
// are produced keyed as collectors key them, honest ones dated up to 5 s
// back, and 1 % hostile ones mixed into the same messages: 8 days old, 9
// minutes and a year ahead, math.MinInt64, math.MaxInt64, −1 and the year
// 2999. sum(count) per key in call_panes must equal the honest calls, the
// three members' tpflow_aggregate_rejected_events_total must add up to the
// hostile calls of each reason, no member may hand a call to the late path
// or drop one, none may stop, and every key's TP99 over the run must be
// within 1 % of the exact value.
func TestHostileEventsThreeAggregators(t *testing.T) {
	heavy(t)
	begin := time.Now()
	binary(t)
	const members, nkeys, steps, perKey = 3, 40, 60, 25
	p, aggAddr, sinkAddr := startDefaults(t, "")
	aggs, addrs := []*proc{p.agg}, []string{aggAddr}
	for i := 2; i <= members; i++ {
		addr := freeAddr(t)
		aggs = append(aggs, start(t, p.dir, fmt.Sprintf("aggregate%d", i), "aggregate", "--config", p.cfgFile, "--listen", addr))
		addrs = append(addrs, addr)
	}
	all := append([]*proc{p.sink, p.broker}, aggs...)
	// The members share the partitions before the traffic starts.
	p.waitFor("three aggregators sharing the calls partitions", 2*time.Minute, func() bool {
		var gen string
		for i, a := range aggs {
			if !a.alive() {
				t.Fatalf("%s exited:\n%s", a.name, a.tail())
			}
			g, parts := lastGeneration(a)
			if parts == "" || (i > 0 && g != gen) {
				return false
			}
			gen = g
		}
		return true
	})

	kcfg := kafka.DefaultConfig()
	kcfg.Brokers = []string{p.brokerAddr}
	prod, err := kafka.NewProducer(kcfg, kcfg.Topic(kafka.TopicCalls), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	keys := make([]loadgen.Key, nkeys)
	for i := range keys {
		keys[i] = loadgen.Key{System: "shop", App: fmt.Sprint("app", i%5), Group: "g", IDC: "bj", Method: fmt.Sprint("M", i)}
	}
	r := rand.New(rand.NewPCG(12, 12))
	hostileTs := func(now int64) (int64, aggregator.Reason) {
		switch r.IntN(7) {
		case 0:
			return now - 8*24*3600*1000, aggregator.ReasonTooOld
		case 1:
			return now + 9*60*1000, aggregator.ReasonTooFarFuture
		case 2:
			return now + 365*24*3600*1000, aggregator.ReasonTooFarFuture
		case 3:
			return math.MinInt64, aggregator.ReasonInvalidTime
		case 4:
			return math.MaxInt64, aggregator.ReasonInvalidTime
		case 5:
			return -1, aggregator.ReasonInvalidTime
		}
		return time.Date(2999, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli(), aggregator.ReasonInvalidTime
	}
	honest := map[loadgen.Key][]uint32{}
	var injected [aggregator.NumReasons]int
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for range steps {
		<-tick.C
		now := time.Now().UnixMilli()
		msgs := make([]kafkago.Message, 0, nkeys)
		for _, k := range keys {
			var b codec.Builder
			ls := b.LabelSet([]schemas.Label{{Name: schemas.LabelSystem, Value: k.System}, {Name: schemas.LabelApp, Value: k.App},
				{Name: schemas.LabelGroup, Value: k.Group}, {Name: schemas.LabelIDC, Value: k.IDC}})
			s := b.Series(ls, k.Method)
			for range perKey {
				lat := uint32(max(1, math.Exp(6+1.1*r.NormFloat64())))
				ts := now - int64(r.IntN(5000))
				if r.IntN(100) == 0 {
					var why aggregator.Reason
					ts, why = hostileTs(now)
					injected[why]++
				} else {
					honest[k] = append(honest[k], lat)
				}
				b.AddCall(codec.Call{TsUnixMs: ts, Series: s, LatencyUs: lat, OK: true})
			}
			msgs = append(msgs, kafkago.Message{Key: kafka.CallKey(k.System, k.App, k.Method), Value: b.AppendTo(nil)})
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err := prod.Produce(ctx, msgs...)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	want := keyCount{}
	var total uint64
	for k, lats := range honest {
		want[k] = uint64(len(lats))
		total += uint64(len(lats))
	}
	settle := p.waitCounts(want, 3*time.Minute)
	t.Logf("%d honest calls over %d keys stored exactly, %s after the last produce", total, len(want), settle)

	for _, why := range aggregator.Reasons {
		if injected[why] == 0 {
			t.Fatalf("no %s calls: the test data must hold every class", why)
		}
		var got float64
		for _, addr := range addrs {
			got += mustMetric(t, addr, fmt.Sprintf("tpflow_aggregate_rejected_events_total{reason=%q}", why))
		}
		t.Logf("%s: %d injected, %v rejected by the three members", why, injected[why], got)
		if int(got) != injected[why] {
			t.Errorf("%s: the members rejected %v calls, %d were injected", why, got, injected[why])
		}
	}
	for i, addr := range addrs {
		dropped := mustMetric(t, addr, "tpflow_aggregate_late_dropped_events_total")
		toLate := mustMetric(t, addr, "tpflow_aggregate_late_path_events_total")
		_, parts := lastGeneration(aggs[i])
		t.Logf("%s: partitions [%s], late_dropped %v, to the late path %v", aggs[i].name, parts, dropped, toLate)
		if dropped != 0 || toLate != 0 {
			t.Errorf("%s: %v honest calls dropped, %v handed to the late path", aggs[i].name, dropped, toLate)
		}
	}
	if merged := mustMetric(t, sinkAddr, "tpflow_sink_late_pane_events_merged_total"); merged != 0 {
		t.Errorf("the late merger merged %v calls", merged)
	}

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var worst float64
	var worstKey string
	for k, lats := range honest {
		slices.Sort(lats)
		exact := loadgen.NearestRank(lats, 0.99)
		tp99, weight := p.tp99(ctx, k, begin)
		if weight != uint64(len(lats)) {
			t.Errorf("%s: centroid weight %d, want %d", k.Method, weight, len(lats))
		}
		rel := math.Abs(tp99-exact) / exact
		if rel > worst {
			worst, worstKey = rel, k.Method
		}
		if rel > 0.01 {
			t.Errorf("%s: TP99 %.0f µs, exact %.0f µs (%.2f %% off)", k.Method, tp99, exact, 100*rel)
		}
	}
	t.Logf("TP99 worst relative error over %d keys: %.3f %% (%s)", len(honest), 100*worst, worstKey)
	for _, r := range all {
		if !r.alive() {
			t.Errorf("%s exited:\n%s", r.name, r.tail())
		}
	}
	t.Logf("total %s", time.Since(begin).Round(time.Second))
}
