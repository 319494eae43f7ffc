package main

import (
	"fmt"
	"runtime"
	"slices"
	"strings"
	"time"
)

// target is the goal: sustained call events per second with every
// process under rssLimit.
const (
	target   = 300_000
	rssLimit = 512 << 20
)

func mib(b int64) string { return fmt.Sprintf("%.0f MiB", float64(b)/(1<<20)) }

func rate(n float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return n / d.Seconds()
}

func fastest(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	return slices.Min(ds)
}

func durs(ds []time.Duration) string {
	s := make([]string, len(ds))
	for i, d := range ds {
		s[i] = d.Round(time.Millisecond).String()
	}
	return strings.Join(s, ", ")
}

// markdown renders the run as a Markdown section.
func (r *result) markdown(o options) string {
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	p("### Pipeline run of %s\n\n", r.start.UTC().Format("2006-01-02 15:04 MST"))
	p("- command: `%s`\n", r.cmdline)
	p("- machine: %s\n", r.machine)
	if r.otherLoad != "" {
		p("- other processes busy when the run started: %s\n", r.otherLoad)
	} else {
		p("- no other process used noticeable CPU when the run started\n")
	}
	p("- set-up: broker (embedded kfake, data dir), aggregate, sink and loadgen as separate `tpflow` processes; clickhouse-server %s (scripts/clickhouse.sh); calls topic %d partitions; %d keys; pane %s, allowed lateness and idle timeout %s; %d loadgen process(es), --rate %d in total\n\n",
		r.chVersion, o.partitions, o.keys, o.pane, o.lateness, o.loadgens, map[bool]int{true: fullSpeed * o.loadgens, false: o.rate}[o.rate == 0])

	prodRate := rate(float64(r.produced), r.loadElapsed)
	aggLoad := rate(r.aggAtLoadEnd, r.loadElapsed)
	aggE2E := rate(float64(r.produced), r.aggDone)
	p("| measure | value |\n| --- | --- |\n")
	p("| calls produced by loadgen | %d in %d messages in %s |\n", r.produced, r.messages, r.loadElapsed.Round(time.Millisecond))
	p("| produced rate | **%.0f events/s** |\n", prodRate)
	p("| aggregated during the load (`tpflow_aggregate_events_total`) | %.0f (%.0f events/s) |\n", r.aggAtLoadEnd, aggLoad)
	if len(r.aggRates) > 2 {
		s := slices.Clone(r.aggRates[1 : len(r.aggRates)-1]) // drop the partial first and last second
		slices.Sort(s)
		p("| aggregated per second during the load: min / median / max | %.0f / %.0f / %.0f |\n", s[0], s[len(s)/2], s[len(s)-1])
	}
	p("| all calls aggregated after | %s from the start of the load (**%.0f events/s end to end**) |\n", r.aggDone.Round(time.Millisecond), aggE2E)
	p("| all calls stored in call_panes (sum(count) FINAL) after | %s (drain after the load %s, bounded by pane + lateness + flushes) |\n",
		r.storedDone.Round(time.Millisecond), (r.storedDone - r.loadElapsed).Round(time.Millisecond))
	p("| sum(count) in call_panes FINAL = calls produced | %d = %d: %v (%d pane rows) |\n", r.storedCount, r.produced, r.countsMatch, r.panes)
	p("| consumer lag of tpflow-aggregate at the end of the load | %d messages not committed of %d; %.0f not yet fetched |\n", r.lagEndMsgs, r.endOffsets, r.fetchedLagEnd)
	p("| per-minute TP table from call_panes (merged centroids), %d rows | %s (runs: %s) |\n", r.paneQueryRows, fastest(r.paneQuery).Round(time.Millisecond), durs(r.paneQuery))
	p("| call_panes size on disk | %s |\n\n", mib(int64(r.paneBytes)))

	var ours float64
	for _, pr := range r.procs {
		ours += pr.cpuLoad
	}
	p("Machine CPU busy during the load: %.2f of %d cores; processes outside the run: %.2f cores. Aggregator Go heap in use, largest sample: %s.",
		r.busyLoad/r.loadElapsed.Seconds(), runtime.NumCPU(), max(r.busyLoad-ours, 0)/r.loadElapsed.Seconds(), mib(int64(r.aggHeapMax)))
	if r.roleEnv != "" {
		p(" Roles ran with %s.", r.roleEnv)
	}
	p("\n\n")
	p("| process | peak RSS (VmHWM) | max sampled VmRSS | CPU s during load | avg cores during load | CPU s to drained |\n| --- | --- | --- | --- | --- | --- |\n")
	over := false
	for _, pr := range r.procs {
		if pr.notSampled {
			p("| %s | %s | %s | | | |\n", pr.name, mib(pr.hwm), mib(pr.maxRSS))
			continue
		}
		if pr.name != "clickhouse-server" && !strings.HasPrefix(pr.name, "loadgen") && pr.hwm > rssLimit {
			over = true
		}
		p("| %s | %s | %s | %.1f | %.2f | %.1f |\n", pr.name, mib(pr.hwm), mib(pr.maxRSS), pr.cpuLoad, pr.cpuLoad/r.loadElapsed.Seconds(), pr.cpuAll)
	}
	p("\n")

	if r.raw != nil {
		rw := r.raw
		ins := rate(float64(rw.Rows), rw.InsertTime)
		q := fastest(rw.QueryTimes)
		p("Alternative: the same number of raw calls inserted into `raw_calls` (ts DateTime, system, app, group_name, idc, method String, latency_us UInt32, ok UInt8; MergeTree ORDER BY (app, method, ts)) with clickhouse-go columnar batches of %d rows, then the per-minute TP table in SQL.\n\n", o.rawBatch)
		p("| measure | pipeline | raw events in ClickHouse | pipeline / raw |\n| --- | --- | --- | --- |\n")
		p("| events/s taken | %.0f (aggregated end to end) | %.0f (insert only; drawing the rows, %s, not counted) | %.2f |\n", aggE2E, ins, rw.GenTime.Round(time.Millisecond), aggE2E/ins)
		p("| time to store %d calls | %s (load start to all stored) | %s (inserts) | %.2f |\n", rw.Rows, r.storedDone.Round(time.Millisecond), rw.InsertTime.Round(time.Millisecond), r.storedDone.Seconds()/rw.InsertTime.Seconds())
		p("| per-minute TP50/90/99/99.9 query | %s, %d rows (runs: %s) | %s, %d rows (runs: %s) | %.3f |\n",
			fastest(r.paneQuery).Round(time.Millisecond), r.paneQueryRows, durs(r.paneQuery), q.Round(time.Millisecond), rw.QueryRows, durs(rw.QueryTimes), fastest(r.paneQuery).Seconds()/q.Seconds())
		p("| stored bytes | %s | %s | %.3f |\n", mib(int64(r.paneBytes)), mib(int64(rw.StoredBytes)), float64(r.paneBytes)/float64(max(rw.StoredBytes, 1)))
		p("\n")
	}
	// A paced run offers the rate in 10 ms slices and so falls a fraction
	// of a per cent short of it: it meets the rate when the pipeline kept
	// up (aggregated during the load at least 99 % of what was produced)
	// and the offered rate was the target within 1 %.
	keptUp := r.aggAtLoadEnd >= 0.99*float64(r.produced)
	rateOK := aggE2E >= target
	if o.rate > 0 {
		rateOK = keptUp && prodRate >= 0.99*target
	}
	verdict := "meets"
	if !rateOK || over || !r.countsMatch {
		verdict = "does not meet"
	}
	p("Target (≥ %d call events/s end to end, every tpflow pipeline process under 512 MiB RSS, counts exact): the run **%s** it (rate %v, pipeline kept up during the load %v, RSS over 512 MiB %v).\n", target, verdict, rateOK, keptUp, over)
	return b.String()
}
