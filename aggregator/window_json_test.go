package aggregator

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

// A window's JSON is the /api/v1/windows form, and reads back into the same
// window but for what that form leaves out.
func TestWindowJSON(t *testing.T) {
	w := Window{
		Key:   Key{System: "trade", App: "order", Group: "order-prod", IDC: "bj", Method: `say "hi"`},
		Start: 1700000000000, End: 1700000300000, Count: 600, Errors: 6, QPS: 2, ErrorRate: 0.01,
		AvgUs: 1500, P50: 1000, P90: 2000, P99: 9000, P999: 12000, Keys: 1,
		Panes: 30, SumUs: 900000, MinUs: 10, MaxUs: 20000,
	}
	b, err := json.Marshal(w)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"method":"say \"hi\""`, `"window":"5m"`, `"p99_us":9000`, `"errors":6`, `"start":"2023-11-14T22:13:20Z"`, `"end":"2023-11-14T22:18:20Z"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("JSON %s lacks %s", b, want)
		}
	}
	var back Window
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	want := w
	want.Panes, want.SumUs, want.MinUs, want.MaxUs = 0, 0, 0, 0
	if back != want || back.Length() != 5*time.Minute {
		t.Fatalf("read back %+v\nwant %+v", back, want)
	}
	if err := json.Unmarshal([]byte(`{"count":"many"}`), &back); err == nil {
		t.Fatal("a count that is not a number was read")
	}
}
