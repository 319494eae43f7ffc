package codec

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

var updateSeeds = flag.Bool("update-seeds", false, "rewrite testdata/fuzz/FuzzDecode from fuzzSeeds")

// fuzzSeed is one committed seed of FuzzDecode with the class Decode gives it
// ("ok" for success).
type fuzzSeed struct {
	name, want string
	buf        []byte
}

func fuzzSeeds() []fuzzSeed {
	var b Builder
	b.SetProducer("node-1/collect/7")
	ls := b.LabelSet([]schemas.Label{{Name: "app", Value: "cart"}, {Name: "idc", Value: "bj"}})
	s := b.Series(ls, "Checkout")
	b.AddCall(Call{TsUnixMs: 1_700_000_000_000, Series: s, LatencyUs: 1234, Status: 200, OK: true})
	b.AddCall(Call{TsUnixMs: 1_700_000_000_001, Series: s, LatencyUs: 99, Status: 500})
	b.AddMetric(Metric{TsUnixMs: 1_700_000_000_000, Labels: ls, Name: b.Symbol("cpu_usage"), Value: 0.25, Kind: 1})
	if err := b.AddLog(&tpflowpb.LogEvent{TsUnixNano: 1, Labels: ls, Stream: b.Symbol("stderr"), Message: "EXT4-fs error"}); err != nil {
		panic(err)
	}
	if err := b.AddPane(&tpflowpb.PaneStat{Labels: ls, Method: s, Count: 2, CentroidMeans: []float64{99, 1234}, CentroidWeights: []float64{1, 1}}); err != nil {
		panic(err)
	}
	if err := b.AddAlert(&tpflowpb.Alert{Rule: "tp99", Labels: ls, Annotations: map[string]string{"summary": "slow"}}); err != nil {
		panic(err)
	}
	full := b.AppendTo(nil)
	b.Reset()
	rls := b.LabelSet([]schemas.Label{{Name: "app", Value: "cart"}, {Name: "container", Value: "web"}, {Name: "host", Value: "10.0.0.1"}})
	if err := b.AddResourcePane(&tpflowpb.ResourcePane{Labels: rls, Name: b.Symbol("cpu_cores"), PaneStartUnixMs: 1_700_000_000_000, PaneMs: 10000, Version: 3, Count: 3, Sum: 1.5, Max: 0.75, P95: 0.75}); err != nil {
		panic(err)
	}
	resource := b.AppendTo(nil)
	calls := benchBatch(20, 5)
	tables := validTables()
	return []fuzzSeed{
		{"full", "ok", full},
		{"calls", "ok", calls},
		{"resource_panes", "ok", resource},
		{"bad_resource_pane", "bad_reference", tables.bytes(11, wire{}.varint(2, 9))},
		{"version_only", "ok", wire{}.varint(1, 1)},
		{"unpacked_refs", "ok", wire{}.varint(1, 1).str(2, "").str(2, "a").bytes(3, wire{}.varint(1, 1).varint(1, 0))},
		{"truncated", "truncated", full[:len(full)/2]},
		{"version_2", "unknown_version", wire{}.varint(1, 2)},
		{"bad_series", "bad_reference", tables.bytes(5, wire{}.varint(2, 7))},
		{"odd_labels", "bad_reference", wire{}.varint(1, 1).bytes(3, wire{}.varint(1, 0))},
		{"bad_wire_type", "malformed", wire{}.varint(1, 1).fixed64(5, 0)},
		{"garbage", "malformed", []byte{0x00, 0xff, 0x07, 0x13}},
	}
}

func seedFile(buf []byte) []byte {
	return fmt.Appendf(nil, "go test fuzz v1\n[]byte(%q)\n", buf)
}

// TestFuzzSeedCorpus checks that every seed decodes to its expected class and
// that the committed corpus matches the seeds (run with -update-seeds to
// rewrite it).
func TestFuzzSeedCorpus(t *testing.T) {
	dir := filepath.Join("testdata", "fuzz", "FuzzDecode")
	var b Batch
	for _, s := range fuzzSeeds() {
		got := "ok"
		if err := Decode(s.buf, &b); err != nil {
			got = Reason(err)
		}
		if got != s.want {
			t.Errorf("seed %s decodes as %s, want %s", s.name, got, s.want)
		}
		path := filepath.Join(dir, s.name)
		if *updateSeeds {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, seedFile(s.buf), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		committed, err := os.ReadFile(path)
		if err != nil {
			t.Errorf("seed %s is not committed (run go test -run TestFuzzSeedCorpus -update-seeds): %v", s.name, err)
			continue
		}
		if !bytes.Equal(committed, seedFile(s.buf)) {
			t.Errorf("committed seed %s differs from fuzzSeeds (run go test -run TestFuzzSeedCorpus -update-seeds)", s.name)
		}
	}
}

// FuzzDecode checks that Decode never panics and that a batch it accepts has
// every reference in range and agrees with the generated code on its calls.
func FuzzDecode(f *testing.F) {
	var b Batch
	f.Fuzz(func(t *testing.T, buf []byte) {
		err := Decode(buf, &b)
		if err != nil {
			if Reason(err) == "other" {
				t.Fatalf("error without a class: %v", err)
			}
			return
		}
		checkReferences(t, &b)
		if b.SchemaVersion != schemas.SchemaVersion {
			t.Fatalf("accepted schema version %d", b.SchemaVersion)
		}
		full, err := b.Full()
		if err != nil {
			if Reason(err) != "malformed" {
				t.Fatalf("Full: %v", err)
			}
			return // invalid UTF-8, which Decode does not check
		}
		if len(full.GetCalls()) != len(b.Calls) || len(full.GetLogs()) != len(b.Logs) || full.GetProducer() != b.Producer {
			t.Fatalf("Decode and proto.Unmarshal disagree: %d/%d calls, %d/%d logs", len(b.Calls), len(full.GetCalls()), len(b.Logs), len(full.GetLogs()))
		}
		for i, c := range full.GetCalls() {
			want := Call{TsUnixMs: c.GetTsUnixMs(), Series: c.GetSeries(), LatencyUs: c.GetLatencyUs(), Status: c.GetStatus(), OK: c.GetOk()}
			if b.Calls[i] != want {
				t.Fatalf("call %d: Decode %+v, proto.Unmarshal %+v", i, b.Calls[i], want)
			}
		}
	})
}
