package plane

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/store"
	"github.com/tpflow/tpflow/pipeline/clickhouse"
)

// exporter copies operations from the store's outbox to ClickHouse. An
// operation leaves the outbox only after ClickHouse accepted it, so an
// outage or a crash loses none; one written twice (a crash between the
// insert and Done) collapses in the ReplacingMergeTree, ordered by id.
type exporter struct {
	outbox store.Outbox
	ccfg   clickhouse.Config
	cfg    OperationsConfig
	m      *metrics
	log    *slog.Logger
	wakeC  chan struct{}
}

func newExporter(o store.Outbox, ccfg clickhouse.Config, cfg OperationsConfig, m *metrics, log *slog.Logger) *exporter {
	return &exporter{outbox: o, ccfg: ccfg, cfg: cfg, m: m, log: log, wakeC: make(chan struct{}, 1)}
}

// wake has the exporter look at the outbox now; it never blocks.
func (e *exporter) wake() {
	select {
	case e.wakeC <- struct{}{}:
	default:
	}
}

// run exports until ctx is done.
func (e *exporter) run(ctx context.Context) {
	var conn driver.Conn
	defer func() {
		if conn != nil {
			conn.Close()
		}
	}()
	backoff := e.cfg.Interval
	for ctx.Err() == nil {
		if conn == nil {
			c, err := clickhouse.OpenMigrated(ctx, e.ccfg, e.log)
			if err != nil {
				return // ctx is done
			}
			conn = c
		}
		n, err := e.once(ctx, conn)
		switch {
		case err != nil:
			e.m.failures.Inc()
			e.log.Warn("cannot export operations to ClickHouse; they stay queued", "err", err, "retry_in", backoff)
			if !pause(ctx, backoff, nil) {
				return
			}
			backoff = min(2*backoff, max(e.ccfg.MaxRetryBackoff, e.cfg.Interval))
		case n == e.cfg.BatchSize:
			backoff = e.cfg.Interval // more are waiting
		default:
			backoff = e.cfg.Interval
			if !pause(ctx, e.cfg.Interval, e.wakeC) {
				return
			}
		}
	}
}

// once exports one batch and returns how many operations it wrote.
func (e *exporter) once(ctx context.Context, conn driver.Conn) (int, error) {
	ops, err := e.outbox.Pending(ctx, e.cfg.BatchSize)
	if err != nil {
		return 0, fmt.Errorf("cannot read the outbox: %w", err)
	}
	e.m.pending.Set(float64(len(ops)))
	if len(ops) == 0 {
		return 0, nil
	}
	if err := insert(ctx, conn, e.ccfg.Database, ops); err != nil {
		return 0, err
	}
	ids := make([]int64, len(ops))
	for i, op := range ops {
		ids[i] = op.ID
	}
	if err := e.outbox.Done(ctx, ids); err != nil {
		return 0, fmt.Errorf("cannot dequeue exported operations: %w", err)
	}
	e.m.exported.Add(float64(len(ops)))
	e.m.pending.Set(0)
	return len(ops), nil
}

// OperationsColumns are the columns of the ClickHouse table operations
// that the export writes.
const OperationsColumns = "id, ts, who, target, action, system, app, group_name, before, after, result, reason"

func insert(ctx context.Context, conn driver.Conn, db string, ops []control.Operation) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".operations ("+OperationsColumns+")")
	if err != nil {
		return fmt.Errorf("cannot prepare operations insert: %w", err)
	}
	for _, op := range ops {
		sys, app, grp := TargetLabels(op.Target)
		if err := b.Append(uint64(op.ID), op.At.UTC(), op.Who, op.Target, op.Action, sys, app, grp,
			op.Before, op.After, op.Result, op.Reason); err != nil {
			_ = b.Abort()
			return fmt.Errorf("cannot append operation %d: %w", op.ID, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("cannot insert %d operations: %w", len(ops), err)
	}
	return nil
}

// TargetLabels returns the system, app and group an operation's target
// names ("group:shop/cart/blue", "config:app:shop/cart", "system:shop"),
// so that dashboards can put a change marker on the panels of what it
// changed; empty for targets of no group (global config, instances).
func TargetLabels(target string) (system, app, group string) {
	t := strings.TrimPrefix(target, "config:")
	kind, name, _ := strings.Cut(t, ":")
	switch kind {
	case "system", "app", "group":
	default:
		return "", "", ""
	}
	parts := strings.SplitN(name, "/", 3)
	parts = append(parts, "", "", "")
	return parts[0], parts[1], parts[2]
}
