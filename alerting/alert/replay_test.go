package alert

import (
	"os"
	"strings"
	"testing"
	"time"
)

func TestReplay(t *testing.T) {
	rules, err := Check("testdata/incident_rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.Open("testdata/incident.jsonl")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	res, err := Replay(rules, 10*time.Second, "incident.jsonl", f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range res.Changes {
		got = append(got, c.At.UTC().Format("15:04:05")+" "+c.State.String()+" "+c.Rule+" "+c.Labels["method"])
	}
	// The slow pane 12:00:40 ends at 12:00:50 (pending), for 10s (firing);
	// the last slow pane leaves the 20s window at 12:01:40.
	want := "12:00:50 pending CheckoutTP99 pay|12:01:00 firing CheckoutTP99 pay|12:01:40 resolved CheckoutTP99 pay"
	if s := strings.Join(got, "|"); s != want {
		t.Errorf("changes\n got %s\nwant %s", s, want)
	}
	if res.Changes[1].Value < 900 || res.Changes[1].Labels["app"] != "checkout" || len(res.Changes[1].Labels) != 3 {
		t.Errorf("firing change %+v", res.Changes[1])
	}
	if s := res.Changes[1].String(); !strings.HasPrefix(s, `2026-01-01T12:01:00Z firing   CheckoutTP99 {alertname="CheckoutTP99", app="checkout", method="pay"} value=9`) {
		t.Errorf("printed %q", s)
	}
	if res.Panes != 24 {
		t.Errorf("%d panes, want 24", res.Panes)
	}
	wantBad := []string{
		"incident.jsonl:13: bad pane: invalid character 'h'",
		`incident.jsonl:14: bad pane: json: unknown field "colour"`,
		"incident.jsonl:15: start 2026-01-01T12:00:55Z is not aligned to the pane length 10s",
		"incident.jsonl:16: count 3 but 1 latencies",
	}
	if len(res.BadLines) != len(wantBad) {
		t.Fatalf("bad lines %v", res.BadLines)
	}
	for i, w := range wantBad {
		if !strings.HasPrefix(res.BadLines[i].Error(), w) {
			t.Errorf("bad line %d: %v, want %s", i, res.BadLines[i], w)
		}
	}
}

func TestReplayBadPanes(t *testing.T) {
	for _, tc := range []struct{ line, want string }{
		{`{"app":"a","latencies_ms":[1]}`, "start: required"},
		{`{"start":"yesterday","latencies_ms":[1]}`, "start: parsing time"},
		{`{"start":true,"latencies_ms":[1]}`, "start: want RFC 3339 or Unix milliseconds"},
		{`{"start":0}`, "no latencies"},
		{`{"start":0,"latencies_ms":[1],"centroid_means":[1],"centroid_weights":[1]}`, "not both"},
		{`{"start":0,"latencies_ms":[-1]}`, "latency -1 ms out of range"},
		{`{"start":0,"centroid_means":[1,2],"centroid_weights":[1]}`, "2 centroid_means but 1 centroid_weights"},
		{`{"start":0,"centroid_means":[1],"centroid_weights":[0.5]}`, "out of range"},
		{`{"start":0,"count":5,"centroid_means":[1],"centroid_weights":[3]}`, "count 5 but centroid weights add up to 3"},
		{`{"start":0,"errors":2,"latencies_ms":[1]}`, "errors 2 > count 1"},
	} {
		res, err := Replay(nil, 10*time.Second, "in", strings.NewReader(tc.line+"\n"))
		if err != nil {
			t.Fatal(err)
		}
		if len(res.BadLines) != 1 || !strings.Contains(res.BadLines[0].Error(), "in:1: ") || !strings.Contains(res.BadLines[0].Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.line, res.BadLines, tc.want)
		}
	}
}
