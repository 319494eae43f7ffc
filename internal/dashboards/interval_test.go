package dashboards

import (
	"testing"
	"time"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// grafanaRound is Grafana's roundInterval (@grafana/data rangeutil): the
// raw interval, in ms, rounded to the next lower "nice" interval of its
// band.
func grafanaRound(ms int64) int64 {
	bands := []struct{ below, to int64 }{
		{10, 1}, {15, 10}, {35, 20}, {75, 50}, {150, 100}, {350, 200}, {750, 500},
		{1500, 1000}, {3500, 2000}, {7500, 5000}, {12500, 10000}, {17500, 15000},
		{25000, 20000}, {45000, 30000}, {90000, 60000}, {210000, 120000},
		{450000, 300000}, {750000, 600000}, {1050000, 900000}, {1500000, 1200000},
		{2700000, 1800000}, {5400000, 3600000}, {9000000, 7200000}, {16200000, 10800000},
		{32400000, 21600000}, {86400000, 43200000}, {604800000, 86400000},
		{1814400000, 604800000}, {3628800000, 2592000000},
	}
	for _, b := range bands {
		if ms < b.below {
			return b.to
		}
	}
	return 31536000000
}

// grafanaInterval is the $__interval Grafana gives a panel's queries for a
// range (rangeutil.calculateInterval as the panel query runner calls it):
// the range over the panel's max data points, rounded by roundInterval,
// then raised to the panel's minimum interval.
func grafanaInterval(from, to time.Time, maxDataPoints float64, minInterval string) (time.Duration, error) {
	ms := grafanaRound(int64(float64(to.Sub(from).Milliseconds()) / maxDataPoints))
	if minInterval != "" {
		lo, err := time.ParseDuration(minInterval)
		if err != nil {
			return 0, err
		}
		ms = max(ms, lo.Milliseconds())
	}
	return time.Duration(ms) * time.Millisecond, nil
}

func TestGrafanaInterval(t *testing.T) {
	f := func(rng time.Duration, points float64, minIv string, want time.Duration) {
		t.Helper()
		from := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
		got, err := grafanaInterval(from, from.Add(rng), points, minIv)
		if err != nil || got != want {
			t.Errorf("range %s, %g points, min %q: %s (%v), want %s", rng, points, minIv, got, err, want)
		}
	}
	f(time.Hour, seriesPoints, "1m", time.Minute)         // 12 s → 10 s, raised to 1m
	f(6*time.Hour, seriesPoints, "1m", time.Minute)       // 72 s
	f(12*time.Hour, seriesPoints, "1m", 2*time.Minute)    // 144 s
	f(24*time.Hour, seriesPoints, "1m", 5*time.Minute)    // 288 s
	f(48*time.Hour, seriesPoints, "1m", 10*time.Minute)   // 576 s
	f(7*24*time.Hour, seriesPoints, "1m", 30*time.Minute) // 2016 s
	f(30*time.Second, 1000, "", 20*time.Millisecond)      // 30 ms
}

// TestSeriesIntervalsUseRollups checks what the time-series settings give:
// a one-day range has a 5m interval, and every range whose interval is 5m
// or more has a multiple of 5m, the condition under which the panels read
// call_rollups.
func TestSeriesIntervalsUseRollups(t *testing.T) {
	if clickhouse.RollupSeconds*time.Second != aggregator.RollupLength {
		t.Fatalf("clickhouse.RollupSeconds is %d, the aggregator's rollup %s", clickhouse.RollupSeconds, aggregator.RollupLength)
	}
	from := time.Date(2026, 1, 5, 10, 0, 0, 0, time.UTC)
	checked := 0
	for _, d := range generated(t) {
		for _, p := range d.Panels {
			if p.Type != "timeseries" || p.Datasource.UID != ClickHouseUID {
				continue
			}
			if p.MaxDataPoints == nil {
				t.Errorf("%s/%s: no maxDataPoints", d.UID, p.Title)
				continue
			}
			checked++
			iv, err := grafanaInterval(from, from.Add(24*time.Hour), *p.MaxDataPoints, p.Interval)
			if err != nil || iv != 5*time.Minute {
				t.Errorf("%s/%s: a one-day range gets %s (%v), want 5m", d.UID, p.Title, iv, err)
			}
			for rng := time.Hour; rng <= 400*24*time.Hour; rng += 37 * time.Minute {
				iv, _ := grafanaInterval(from, from.Add(rng), *p.MaxDataPoints, p.Interval)
				if iv >= clickhouse.RollupSeconds*time.Second && iv%(clickhouse.RollupSeconds*time.Second) != 0 {
					t.Fatalf("%s/%s: range %s gets %s, not a multiple of the rollup", d.UID, p.Title, rng, iv)
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no ClickHouse time series checked")
	}
}
