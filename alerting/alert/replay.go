package alert

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/alerting"
)

// ReplayPane is one line of a replay input: a final pane of one key, as the
// stats topic carries it. Latencies are given either as the pane's digest
// (CentroidMeans in µs with CentroidWeights) or as the calls' latencies in
// milliseconds (LatenciesMs, one entry per call); Count defaults to the
// number of latencies.
type ReplayPane struct {
	System string `json:"system"`
	App    string `json:"app"`
	Group  string `json:"group"`
	IDC    string `json:"idc"`
	Method string `json:"method"`
	// Start is the pane's start, RFC 3339 or Unix milliseconds; it must
	// be aligned to the pane length.
	Start           json.RawMessage `json:"start"`
	Count           uint64          `json:"count"`
	Errors          uint64          `json:"errors"`
	LatenciesMs     []float64       `json:"latencies_ms"`
	CentroidMeans   []float64       `json:"centroid_means"`
	CentroidWeights []float64       `json:"centroid_weights"`
}

// ReplayFormat documents the replay input for --help.
const ReplayFormat = `One JSON object per line (blank lines and lines starting with # are
skipped), a final pane of one key:
  {"start": "2026-01-01T12:00:00Z", "system": "shop", "app": "checkout",
   "group": "blue", "idc": "dc1", "method": "pay", "count": 100,
   "errors": 2, "latencies_ms": [12, 15, 900]}
start is RFC 3339 or Unix milliseconds, aligned to the pane length;
latencies are latencies_ms (one per call, count defaults to their number)
or the pane's digest as centroid_means (µs) and centroid_weights. Lines
may come in any order; a bad line is reported as FILE:LINE and skipped.
Only call measures are replayed: log and resource rules see no data.`

// ReplayChange is one alert state change found by Replay.
type ReplayChange struct {
	At     time.Time
	Rule   string
	State  alerting.State
	Value  float64
	Labels map[string]string
}

func (c ReplayChange) String() string {
	var ls []string
	for _, k := range slices.Sorted(maps.Keys(c.Labels)) {
		ls = append(ls, fmt.Sprintf("%s=%q", k, c.Labels[k]))
	}
	return fmt.Sprintf("%s %-8s %s {%s} value=%g", c.At.UTC().Format(time.RFC3339), c.State, c.Rule, strings.Join(ls, ", "), c.Value)
}

// ReplayResult is what Replay found: the state changes in time order and
// the bad input lines, each as FILE:LINE: problem.
type ReplayResult struct {
	Changes  []ReplayChange
	BadLines []error
	Panes    int
}

// Replay evaluates rules over the panes of in (file names it in errors),
// as the alert role would have: the panes go into an aggregator.Engine of
// pane length pane, and the rules are evaluated at the end of every pane
// from the first to the last, seeing the panes that ended by then. Bad
// lines are collected and skipped. Only call measures can be replayed;
// rules of log measures see no lines.
func Replay(rules []*alerting.Rule, pane time.Duration, file string, in io.Reader) (ReplayResult, error) {
	var res ReplayResult
	paneMs := pane.Milliseconds()
	byEnd := map[int64][]aggregator.PaneStat{}
	sc := bufio.NewScanner(in)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for line := 1; sc.Scan(); line++ {
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 || text[0] == '#' {
			continue
		}
		ps, err := parseReplayPane(text, paneMs)
		if err != nil {
			res.BadLines = append(res.BadLines, fmt.Errorf("%s:%d: %w", file, line, err))
			continue
		}
		byEnd[ps.Start+paneMs] = append(byEnd[ps.Start+paneMs], ps)
		res.Panes++
	}
	if err := sc.Err(); err != nil {
		return res, fmt.Errorf("cannot read %s: %w", file, err)
	}
	if len(byEnd) == 0 {
		return res, nil
	}
	cfg := aggregator.DefaultConfig()
	cfg.Rollup = 0 // replay reads windows only
	cfg.Pane = pane
	cfg.Grace = 0
	var longest time.Duration
	for _, r := range rules {
		longest = max(longest, r.Window)
	}
	n := (longest + pane - 1) / pane
	cfg.Windows = []time.Duration{max(n, 1) * pane}
	// The engine's clock is the replay's: each pane is added at its end, so
	// the time model judges it as the live role would have.
	var now time.Time
	eng, err := aggregator.New(cfg, aggregator.WithClock(func() time.Time { return now }))
	if err != nil {
		return res, fmt.Errorf("cannot replay: %w", err)
	}
	var rs alerting.RuleSet
	rs.Set(rules)
	mcfg := alerting.DefaultConfig()
	mcfg.Interval = pane
	mcfg.ResendDelay = time.Duration(math.MaxInt64 / 2)
	mgr, err := alerting.NewManager(mcfg, &rs, eng, nil, func() time.Time { return now }, nil)
	if err != nil {
		return res, fmt.Errorf("cannot replay: %w", err)
	}
	mgr.OnStateChange(func(_ context.Context, as []alerting.Alert) {
		for _, a := range as {
			res.Changes = append(res.Changes, ReplayChange{At: now, Rule: a.Rule, State: a.State, Value: a.Value, Labels: a.Labels})
		}
	})
	ends := slices.Sorted(maps.Keys(byEnd))
	for end := ends[0]; end <= ends[len(ends)-1]; end += paneMs {
		now = time.UnixMilli(end)
		for _, ps := range byEnd[end] {
			if err := eng.AddFinal(ps); err != nil {
				return res, fmt.Errorf("BUG: replay pane rejected: %w", err)
			}
		}
		now = time.UnixMilli(end)
		mgr.Tick(context.Background())
	}
	return res, nil
}

func parseReplayPane(text []byte, paneMs int64) (aggregator.PaneStat, error) {
	var rp ReplayPane
	dec := json.NewDecoder(bytes.NewReader(text))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&rp); err != nil {
		return aggregator.PaneStat{}, fmt.Errorf("bad pane: %w", err)
	}
	start, err := parseStart(rp.Start)
	if err != nil {
		return aggregator.PaneStat{}, err
	}
	if start%paneMs != 0 {
		return aggregator.PaneStat{}, fmt.Errorf("start %s is not aligned to the pane length %s",
			time.UnixMilli(start).UTC().Format(time.RFC3339Nano), time.Duration(paneMs)*time.Millisecond)
	}
	ps := aggregator.PaneStat{
		Key:   aggregator.Key{System: rp.System, App: rp.App, Group: rp.Group, IDC: rp.IDC, Method: rp.Method},
		Start: start, PaneMs: paneMs, Version: 1, Count: rp.Count, Errors: rp.Errors,
	}
	switch {
	case len(rp.LatenciesMs) > 0 && len(rp.CentroidMeans) > 0:
		return ps, errors.New("give latencies_ms or centroid_means, not both")
	case len(rp.LatenciesMs) > 0:
		lat := slices.Clone(rp.LatenciesMs)
		sort.Float64s(lat)
		if ps.Count == 0 {
			ps.Count = uint64(len(lat))
		}
		if ps.Count != uint64(len(lat)) {
			return ps, fmt.Errorf("count %d but %d latencies", ps.Count, len(lat))
		}
		var sum float64
		for _, ms := range lat {
			if ms < 0 || ms > math.MaxUint32/1000 || math.IsNaN(ms) {
				return ps, fmt.Errorf("latency %g ms out of range", ms)
			}
			sum += ms * 1000
			ps.Centroids = append(ps.Centroids, aggregator.Centroid{Mean: float32(ms * 1000), Weight: 1})
		}
		ps.SumUs = uint64(sum)
		ps.MinUs, ps.MaxUs = uint32(lat[0]*1000), uint32(lat[len(lat)-1]*1000)
	case len(rp.CentroidMeans) > 0:
		if len(rp.CentroidMeans) != len(rp.CentroidWeights) {
			return ps, fmt.Errorf("%d centroid_means but %d centroid_weights", len(rp.CentroidMeans), len(rp.CentroidWeights))
		}
		var w, sum float64
		lo, hi := math.Inf(1), math.Inf(-1)
		for i, m := range rp.CentroidMeans {
			cw := rp.CentroidWeights[i]
			if m < 0 || m > math.MaxUint32 || cw <= 0 || cw > math.MaxUint32 || cw != math.Trunc(cw) {
				return ps, fmt.Errorf("centroid %d (%g µs, weight %g) out of range", i, m, cw)
			}
			ps.Centroids = append(ps.Centroids, aggregator.Centroid{Mean: float32(m), Weight: uint32(cw)})
			w += cw
			sum += m * cw
			lo, hi = min(lo, m), max(hi, m)
		}
		if ps.Count == 0 {
			ps.Count = uint64(w)
		}
		if float64(ps.Count) != w {
			return ps, fmt.Errorf("count %d but centroid weights add up to %g", ps.Count, w)
		}
		ps.SumUs, ps.MinUs, ps.MaxUs = uint64(sum), uint32(lo), uint32(hi)
		slices.SortFunc(ps.Centroids, func(a, b aggregator.Centroid) int { return cmp.Compare(a.Mean, b.Mean) })
	default:
		return ps, errors.New("no latencies: give latencies_ms or centroid_means and centroid_weights")
	}
	if ps.Errors > ps.Count {
		return ps, fmt.Errorf("errors %d > count %d", ps.Errors, ps.Count)
	}
	return ps, nil
}

func parseStart(raw json.RawMessage) (int64, error) {
	if len(raw) == 0 {
		return 0, errors.New("start: required")
	}
	var ms int64
	if err := json.Unmarshal(raw, &ms); err == nil {
		return ms, nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return 0, fmt.Errorf("start: want RFC 3339 or Unix milliseconds, got %s", raw)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return 0, fmt.Errorf("start: %w", err)
	}
	return t.UnixMilli(), nil
}
