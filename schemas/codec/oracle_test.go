package codec

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

var sampleStrings = []string{"app", "system", "group", "idc", "cart", "shop", "GET /api/v1/orders", "日本語", "é", "x", "com.example.Svc.method", "stdout", "ERROR"}

func randString(r *rand.Rand) string {
	if r.IntN(4) == 0 {
		return fmt.Sprintf("s%d", r.IntN(1000))
	}
	return sampleStrings[r.IntN(len(sampleStrings))]
}

func randVarint(r *rand.Rand) uint64 {
	switch r.IntN(4) {
	case 0:
		return 0
	case 1:
		return uint64(r.IntN(128))
	case 2:
		return uint64(r.IntN(1 << 20))
	}
	return r.Uint64()
}

// randPB returns a random EventBatch whose references are all in range.
func randPB(r *rand.Rand) *tpflowpb.EventBatch {
	pb := &tpflowpb.EventBatch{SchemaVersion: schemas.SchemaVersion}
	nsym := 0
	if r.IntN(10) != 0 {
		nsym = 1 + r.IntN(20)
		pb.Symbols = append(pb.Symbols, "")
		for len(pb.Symbols) < nsym {
			pb.Symbols = append(pb.Symbols, randString(r))
		}
	}
	sym := func() uint32 {
		if nsym == 0 {
			return 0
		}
		return uint32(r.IntN(nsym))
	}
	nsets := r.IntN(5)
	for range nsets {
		ls := &tpflowpb.LabelSet{}
		for range 2 * r.IntN(5) {
			ls.Refs = append(ls.Refs, sym())
		}
		pb.LabelSets = append(pb.LabelSets, ls)
	}
	set := func() uint32 { return uint32(r.IntN(max(nsets, 1))) }
	for range r.IntN(6) {
		pb.Series = append(pb.Series, &tpflowpb.Series{Labels: set(), Method: sym()})
	}
	if len(pb.Series) > 0 {
		for range r.IntN(60) {
			pb.Calls = append(pb.Calls, &tpflowpb.CallEvent{
				TsUnixMs:  int64(randVarint(r)),
				Series:    uint32(r.IntN(len(pb.Series))),
				LatencyUs: uint32(randVarint(r)),
				Status:    uint32(randVarint(r)),
				Ok:        r.IntN(2) == 0,
			})
		}
	}
	for range r.IntN(10) {
		v := r.NormFloat64() * 1e6
		if r.IntN(5) == 0 {
			v = []float64{0, math.Copysign(0, -1), math.Inf(1), math.MaxFloat64}[r.IntN(4)]
		}
		pb.Metrics = append(pb.Metrics, &tpflowpb.MetricSample{
			TsUnixMs: int64(randVarint(r)), Labels: set(), Name: sym(), Value: v,
			Kind: tpflowpb.MetricKind(r.IntN(3)),
		})
	}
	for range r.IntN(4) {
		pb.Logs = append(pb.Logs, &tpflowpb.LogEvent{
			TsUnixNano: int64(randVarint(r)), Labels: set(), Stream: sym(), Level: sym(),
			Message: randString(r), Source: sym(), SourceId: randVarint(r), Offset: randVarint(r),
			Unparsed: r.IntN(2) == 0, Truncated: r.IntN(2) == 0,
		})
	}
	for range r.IntN(3) {
		p := &tpflowpb.PaneStat{
			Labels: set(), Method: sym(), PaneStartUnixMs: int64(randVarint(r)), PaneMs: 10000,
			Version: randVarint(r), Count: randVarint(r), Errors: randVarint(r),
			SumUs: r.Float64(), MinUs: 1, MaxUs: 2, P50Us: 3, P90Us: 4, P99Us: 5, P999Us: 6,
		}
		for range r.IntN(5) {
			p.CentroidMeans = append(p.CentroidMeans, r.Float64())
			p.CentroidWeights = append(p.CentroidWeights, float64(r.IntN(100)))
		}
		pb.Panes = append(pb.Panes, p)
	}
	for range r.IntN(3) {
		a := &tpflowpb.Alert{
			Rule: randString(r), Labels: set(), State: tpflowpb.AlertState(r.IntN(5)),
			Value: r.Float64(), ActiveAtUnixMs: 1, FiredAtUnixMs: 2, ResolvedAtUnixMs: 3,
			EvalUnixMs: 4, Fingerprint: randString(r),
		}
		if r.IntN(2) == 0 {
			a.Annotations = map[string]string{"summary": randString(r), randString(r): ""}
		}
		pb.Alerts = append(pb.Alerts, a)
	}
	for range r.IntN(3) {
		pb.ResourcePanes = append(pb.ResourcePanes, &tpflowpb.ResourcePane{
			Labels: set(), Name: sym(), PaneStartUnixMs: int64(randVarint(r)), PaneMs: 10000,
			Version: randVarint(r), Count: randVarint(r), Sum: r.Float64() * 1e9, Max: r.Float64(), P95: r.Float64(),
		})
	}
	if r.IntN(2) == 0 {
		pb.Producer = randString(r)
	}
	return pb
}

// checkAgainstPB compares a decoded Batch with the same batch decoded by the
// generated code, field by field, applying the documented normalisation
// (an empty symbol table or label set table gains an empty entry 0).
func checkAgainstPB(t *testing.T, got *Batch, pb *tpflowpb.EventBatch) {
	t.Helper()
	if got.SchemaVersion != pb.GetSchemaVersion() {
		t.Errorf("SchemaVersion = %d, want %d", got.SchemaVersion, pb.GetSchemaVersion())
	}
	wantSyms := pb.GetSymbols()
	if len(wantSyms) == 0 {
		wantSyms = []string{""}
	}
	if !slices.Equal(got.Symbols, wantSyms) {
		t.Errorf("Symbols = %q, want %q", got.Symbols, wantSyms)
	}
	wantSets := pb.GetLabelSets()
	if len(wantSets) == 0 {
		wantSets = []*tpflowpb.LabelSet{{}}
	}
	if got.NumLabelSets() != len(wantSets) {
		t.Errorf("NumLabelSets() = %d, want %d", got.NumLabelSets(), len(wantSets))
	} else {
		for i, ls := range wantSets {
			if g := got.LabelSet(uint32(i)); !slices.Equal(g, ls.GetRefs()) && (len(g) != 0 || len(ls.GetRefs()) != 0) {
				t.Errorf("LabelSet(%d) = %v, want %v", i, g, ls.GetRefs())
			}
		}
	}
	if len(got.Series) != len(pb.GetSeries()) {
		t.Errorf("%d series, want %d", len(got.Series), len(pb.GetSeries()))
	} else {
		for i, s := range pb.GetSeries() {
			if want := (Series{Labels: s.GetLabels(), Method: s.GetMethod()}); got.Series[i] != want {
				t.Errorf("Series[%d] = %+v, want %+v", i, got.Series[i], want)
			}
		}
	}
	if len(got.Calls) != len(pb.GetCalls()) {
		t.Errorf("%d calls, want %d", len(got.Calls), len(pb.GetCalls()))
	} else {
		for i, c := range pb.GetCalls() {
			want := Call{TsUnixMs: c.GetTsUnixMs(), Series: c.GetSeries(), LatencyUs: c.GetLatencyUs(), Status: c.GetStatus(), OK: c.GetOk()}
			if got.Calls[i] != want {
				t.Errorf("Calls[%d] = %+v, want %+v", i, got.Calls[i], want)
			}
		}
	}
	if len(got.Metrics) != len(pb.GetMetrics()) {
		t.Errorf("%d metrics, want %d", len(got.Metrics), len(pb.GetMetrics()))
	} else {
		for i, m := range pb.GetMetrics() {
			want := Metric{TsUnixMs: m.GetTsUnixMs(), Labels: m.GetLabels(), Name: m.GetName(), Value: m.GetValue(), Kind: uint8(m.GetKind())}
			g := got.Metrics[i]
			if math.Float64bits(g.Value) != math.Float64bits(want.Value) {
				t.Errorf("Metrics[%d].Value = %v, want %v", i, g.Value, want.Value)
			}
			g.Value, want.Value = 0, 0
			if g != want {
				t.Errorf("Metrics[%d] = %+v, want %+v", i, got.Metrics[i], m)
			}
		}
	}
	checkRaw(t, "log", got.Logs, pb.GetLogs(), func() proto.Message { return new(tpflowpb.LogEvent) })
	checkRaw(t, "pane", got.Panes, pb.GetPanes(), func() proto.Message { return new(tpflowpb.PaneStat) })
	checkRaw(t, "alert", got.Alerts, pb.GetAlerts(), func() proto.Message { return new(tpflowpb.Alert) })
	checkRaw(t, "resource pane", got.ResourcePanes, pb.GetResourcePanes(), func() proto.Message { return new(tpflowpb.ResourcePane) })
	if got.Producer != pb.GetProducer() {
		t.Errorf("Producer = %q, want %q", got.Producer, pb.GetProducer())
	}
	if n := len(pb.GetCalls()) + len(pb.GetMetrics()) + len(pb.GetLogs()) + len(pb.GetPanes()) + len(pb.GetAlerts()) + len(pb.GetResourcePanes()); got.Len() != n {
		t.Errorf("Len() = %d, want %d", got.Len(), n)
	}
	full, err := got.Full()
	if err != nil {
		t.Fatalf("Full: %v", err)
	}
	if !proto.Equal(full, pb) {
		t.Errorf("Full() = %v\nwant %v", full, pb)
	}
}

func checkRaw[M proto.Message](t *testing.T, what string, raw [][]byte, want []M, alloc func() proto.Message) {
	t.Helper()
	if len(raw) != len(want) {
		t.Errorf("%d %ss, want %d", len(raw), what, len(want))
		return
	}
	for i := range raw {
		m := alloc()
		if err := proto.Unmarshal(raw[i], m); err != nil {
			t.Errorf("%s %d: %v", what, i, err)
		} else if !proto.Equal(m, want[i]) {
			t.Errorf("%s %d = %v, want %v", what, i, m, want[i])
		}
	}
}

// TestDecodeMatchesGeneratedCode decodes proto.Marshal output of random
// batches and compares every field with proto.Unmarshal's reading.
func TestDecodeMatchesGeneratedCode(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	var got Batch // reused on purpose: stale state must not leak
	for i := range 500 {
		pb := randPB(r)
		buf, err := proto.Marshal(pb)
		if err != nil {
			t.Fatal(err)
		}
		if err := Decode(buf, &got); err != nil {
			t.Fatalf("batch %d: Decode: %v\n%v", i, err, pb)
		}
		checkAgainstPB(t, &got, pb)
		if t.Failed() {
			t.Fatalf("batch %d: %v", i, pb)
		}
	}
}

// model is what a test added to a Builder, as strings.
type model struct {
	calls   []modelCall
	metrics []modelMetric
	logs    []string // messages
}

type modelCall struct {
	labels map[string]string
	method string
	c      Call // Series is not compared
}

type modelMetric struct {
	labels map[string]string
	name   string
	m      Metric // Labels and Name are not compared
}

var labelNames = []string{schemas.LabelSystem, schemas.LabelApp, schemas.LabelGroup, schemas.LabelIDC, schemas.LabelEnv, schemas.LabelHost, schemas.LabelPod}

func randLabels(r *rand.Rand) []schemas.Label {
	var ls []schemas.Label
	for _, i := range r.Perm(len(labelNames))[:r.IntN(len(labelNames)+1)] {
		ls = append(ls, schemas.Label{Name: labelNames[i], Value: randString(r)})
	}
	return ls
}

func labelMap(ls []schemas.Label) map[string]string {
	m := map[string]string{}
	for _, l := range ls {
		m[l.Name] = l.Value
	}
	return m
}

func batchLabels(b *Batch, set uint32) map[string]string {
	m := map[string]string{}
	refs := b.LabelSet(set)
	for i := 0; i+1 < len(refs); i += 2 {
		m[b.Symbol(refs[i])] = b.Symbol(refs[i+1])
	}
	return m
}

func fillBuilder(r *rand.Rand, b *Builder) model {
	var md model
	if r.IntN(2) == 0 {
		b.SetProducer(randString(r))
	}
	for range r.IntN(200) {
		ls := randLabels(r)
		method := randString(r)
		c := Call{TsUnixMs: int64(randVarint(r)), LatencyUs: uint32(randVarint(r)), Status: uint32(randVarint(r)), OK: r.IntN(2) == 0}
		c.Series = b.Series(b.LabelSet(ls), method)
		b.AddCall(c)
		md.calls = append(md.calls, modelCall{labels: labelMap(ls), method: method, c: c})
	}
	for range r.IntN(20) {
		ls := randLabels(r)
		name := randString(r)
		m := Metric{TsUnixMs: int64(randVarint(r)), Value: r.NormFloat64(), Kind: uint8(r.IntN(3))}
		m.Labels, m.Name = b.LabelSet(ls), b.Symbol(name)
		b.AddMetric(m)
		md.metrics = append(md.metrics, modelMetric{labels: labelMap(ls), name: name, m: m})
	}
	for range r.IntN(5) {
		msg := randString(r)
		err := b.AddLog(&tpflowpb.LogEvent{TsUnixNano: 1, Labels: b.LabelSet(randLabels(r)), Stream: b.Symbol("stdout"), Message: msg})
		if err != nil {
			panic(err)
		}
		md.logs = append(md.logs, msg)
	}
	return md
}

func checkModel(t *testing.T, got *Batch, md model) {
	t.Helper()
	if len(got.Calls) != len(md.calls) {
		t.Fatalf("%d calls, want %d", len(got.Calls), len(md.calls))
	}
	for i, w := range md.calls {
		g := got.Calls[i]
		s := got.Series[g.Series]
		if gl := batchLabels(got, s.Labels); fmt.Sprint(gl) != fmt.Sprint(w.labels) {
			t.Errorf("call %d labels = %v, want %v", i, gl, w.labels)
		}
		if m := got.Symbol(s.Method); m != w.method {
			t.Errorf("call %d method = %q, want %q", i, m, w.method)
		}
		g.Series, w.c.Series = 0, 0
		if g != w.c {
			t.Errorf("call %d = %+v, want %+v", i, g, w.c)
		}
	}
	if len(got.Metrics) != len(md.metrics) {
		t.Fatalf("%d metrics, want %d", len(got.Metrics), len(md.metrics))
	}
	for i, w := range md.metrics {
		g := got.Metrics[i]
		if gl := batchLabels(got, g.Labels); fmt.Sprint(gl) != fmt.Sprint(w.labels) {
			t.Errorf("metric %d labels = %v, want %v", i, gl, w.labels)
		}
		if n := got.Symbol(g.Name); n != w.name {
			t.Errorf("metric %d name = %q, want %q", i, n, w.name)
		}
		if g.Value != w.m.Value || g.TsUnixMs != w.m.TsUnixMs || g.Kind != w.m.Kind {
			t.Errorf("metric %d = %+v, want %+v", i, g, w.m)
		}
	}
	if len(got.Logs) != len(md.logs) {
		t.Fatalf("%d logs, want %d", len(got.Logs), len(md.logs))
	}
	for i, raw := range got.Logs {
		var ev tpflowpb.LogEvent
		if err := proto.Unmarshal(raw, &ev); err != nil || ev.GetMessage() != md.logs[i] {
			t.Errorf("log %d = %v (%v), want message %q", i, &ev, err, md.logs[i])
		}
	}
}

// TestBuilderRoundTrip builds random batches and reads them back with both
// Decode and proto.Unmarshal, which must agree with each other and with what
// was added.
func TestBuilderRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 5))
	var b Builder // reused across batches through Reset
	var got Batch
	var buf []byte
	for i := range 300 {
		b.Reset()
		md := fillBuilder(r, &b)
		buf = b.AppendTo(buf[:0])
		if b.Size() != len(buf) {
			t.Fatalf("batch %d: Size() = %d, AppendTo wrote %d", i, b.Size(), len(buf))
		}
		if b.Len() != len(md.calls)+len(md.metrics)+len(md.logs) {
			t.Fatalf("batch %d: Len() = %d, want %d", i, b.Len(), len(md.calls)+len(md.metrics)+len(md.logs))
		}
		pb := new(tpflowpb.EventBatch)
		if err := proto.Unmarshal(buf, pb); err != nil {
			t.Fatalf("batch %d: proto.Unmarshal: %v", i, err)
		}
		if err := Decode(buf, &got); err != nil {
			t.Fatalf("batch %d: Decode: %v", i, err)
		}
		checkAgainstPB(t, &got, pb)
		checkModel(t, &got, md)
		if t.Failed() {
			t.Fatalf("batch %d failed", i)
		}
	}
}
