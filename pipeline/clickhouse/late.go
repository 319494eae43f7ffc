package clickhouse

import (
	"context"
	"fmt"
	"strings"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// MergedPane is a row of call_panes or call_rollups as the late merger reads
// and writes it: the pane and its late mark, the calls partition and
// offset of the last late event merged into it (-1 and -1 for a row the
// late merger never wrote; migration 0008). A late event read from that
// partition at or below that offset is already in the row.
type MergedPane struct {
	PaneRow
	LatePartition int32
	LateOffset    int64
}

// PaneID is the identity of a stored pane: its key and start (whole
// seconds, as stored).
type PaneID struct {
	System, App, Group, IDC, Method string
	Start                           int64 // unix seconds
}

// ID returns the identity of r.
func (r *PaneRow) ID() PaneID {
	return PaneID{System: r.System, App: r.App, Group: r.Group, IDC: r.IDC, Method: r.Method, Start: r.PaneStart.Unix()}
}

var mergedColumns = paneColumns + ", late_partition, late_offset"

// QueryMergedPanes returns the current version (FINAL) of every stored pane
// among ids, from call_rollups when rollups is set and from call_panes
// otherwise; identities not stored are absent from the map.
func QueryMergedPanes(ctx context.Context, conn driver.Conn, database string, rollups bool, ids []PaneID) (map[PaneID]MergedPane, error) {
	if !identRe.MatchString(database) {
		return nil, fmt.Errorf("cannot query stored panes: database name %q must match %s", database, identRe)
	}
	out := make(map[PaneID]MergedPane, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	want := make(map[PaneID]bool, len(ids))
	lo, hi := ids[0].Start, ids[0].Start
	var apps, methods []string
	seenApp, seenMethod := map[string]bool{}, map[string]bool{}
	for _, id := range ids {
		want[id] = true
		lo, hi = min(lo, id.Start), max(hi, id.Start)
		if !seenApp[id.App] {
			seenApp[id.App] = true
			apps = append(apps, id.App)
		}
		if !seenMethod[id.Method] {
			seenMethod[id.Method] = true
			methods = append(methods, id.Method)
		}
	}
	table := "call_panes"
	if rollups {
		table = "call_rollups"
	}
	// The time range and the app and method lists narrow the read; the
	// exact identities are picked below.
	var b strings.Builder
	fmt.Fprintf(&b, "SELECT %s FROM %s.%s FINAL WHERE pane_start >= toDateTime(?) AND pane_start <= toDateTime(?)"+
		" AND has(?, app) AND has(?, method)", mergedColumns, database, table)
	rows, err := conn.Query(ctx, b.String(), lo, hi, apps, methods)
	if err != nil {
		return nil, fmt.Errorf("cannot query stored panes of %s: %w", table, err)
	}
	defer rows.Close()
	for rows.Next() {
		var r MergedPane
		if err := rows.Scan(&r.PaneStart, &r.PaneSeconds, &r.System, &r.App, &r.Group, &r.IDC, &r.Method,
			&r.Count, &r.Errors, &r.SumUs, &r.MinUs, &r.MaxUs, &r.P50Us, &r.P90Us, &r.P99Us, &r.P999Us,
			&r.CentroidMeans, &r.CentroidWeights, &r.Version, &r.LatePartition, &r.LateOffset); err != nil {
			return nil, fmt.Errorf("cannot scan stored pane of %s: %w", table, err)
		}
		r.PaneStart = r.PaneStart.UTC()
		if id := r.ID(); want[id] {
			out[id] = r
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("cannot query stored panes of %s: %w", table, err)
	}
	return out, nil
}

// WriteMergedPanes stores rows, with their late marks, in call_rollups when
// rollups is set and in call_panes otherwise. See Writer for when it
// returns.
func (w *Writer) WriteMergedPanes(ctx context.Context, rollups bool, rows []MergedPane) error {
	table := "call_panes"
	if rollups {
		table = "call_rollups"
	}
	return write(ctx, w, table, mergedColumns, rows, func(r *MergedPane) error { return r.check() }, appendMerged)
}

func appendMerged(b driver.Batch, r *MergedPane) error {
	return b.Append(r.PaneStart, r.PaneSeconds, r.System, r.App, r.Group, r.IDC, r.Method, r.Count, r.Errors,
		r.SumUs, r.MinUs, r.MaxUs, r.P50Us, r.P90Us, r.P99Us, r.P999Us, nonNilF(r.CentroidMeans), nonNilF(r.CentroidWeights),
		r.Version, r.LatePartition, r.LateOffset)
}
