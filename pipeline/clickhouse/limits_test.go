package clickhouse

import (
	"context"
	"testing"
	"time"

	"github.com/tpflow/tpflow/pipeline/clickhouse/chtest"
)

// TestLimitsReachTheServer runs queries that a server without the limits
// answers, and checks that with Limits the server stops each one at the
// limit it crosses and that the settings are what the query sees.
func TestLimitsReachTheServer(t *testing.T) {
	conn, _ := setup(t)
	ctx := context.Background()
	t.Logf("server %s", chtest.Scalar[string](t, conn, "SELECT version()"))

	// The settings as the server sees them for the query.
	lctx := Limits{MaxExecutionTime: 1500 * time.Millisecond, MaxMemoryUsage: 123 << 20}.Context(ctx)
	rows, err := conn.Query(lctx, "SELECT name, value FROM system.settings WHERE name IN ('max_execution_time', 'max_memory_usage') ORDER BY name")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for rows.Next() {
		var n, v string
		if err := rows.Scan(&n, &v); err != nil {
			t.Fatal(err)
		}
		got[n] = v
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	if got["max_execution_time"] != "2" || got["max_memory_usage"] != "128974848" {
		t.Errorf("settings seen by the query: %v, want max_execution_time 2 and max_memory_usage 128974848", got)
	}

	// A query that needs ~80 MB: fine unbounded, stopped at 16 MiB.
	const big = "SELECT length(groupArray(number)) FROM numbers(10000000)"
	var n uint64
	if err := conn.QueryRow(ctx, big).Scan(&n); err != nil || n != 10000000 {
		t.Fatalf("unbounded: %d, %v", n, err)
	}
	err = conn.QueryRow(Limits{MaxMemoryUsage: 16 << 20}.Context(ctx), big).Scan(&n)
	if which, ok := OverLimit(err); !ok || which != "max_memory_usage" {
		t.Errorf("with 16 MiB: %v (over limit %q %v), want the memory limit", err, which, ok)
	}

	// A query that runs until stopped: the server ends it at 1 s.
	start := time.Now()
	err = conn.QueryRow(Limits{MaxExecutionTime: time.Second}.Context(ctx), "SELECT count() FROM system.numbers WHERE NOT ignore(sipHash64(number))").Scan(&n)
	took := time.Since(start)
	if which, ok := OverLimit(err); !ok || which != "max_execution_time" {
		t.Errorf("with 1 s: %v after %s (over limit %q %v), want the time limit", err, took, which, ok)
	}
	t.Logf("max_execution_time=1s stopped the query after %s: %v", took, err)
	if took > 10*time.Second {
		t.Errorf("the time limit stopped the query after %s", took)
	}
	if _, ok := OverLimit(context.Canceled); ok {
		t.Error("OverLimit(context.Canceled) is true")
	}
}

// TestLimitsSurviveAContextDeadline checks that a context deadline does
// not replace the time limit: clickhouse-go sets max_execution_time to a
// deadline + 5 s, so a 30 s request timeout let its query run 35 s.
func TestLimitsSurviveAContextDeadline(t *testing.T) {
	conn, _ := setup(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var v string
	if err := conn.QueryRow(Limits{MaxExecutionTime: 2 * time.Second}.Context(ctx),
		"SELECT value FROM system.settings WHERE name = 'max_execution_time'").Scan(&v); err != nil {
		t.Fatal(err)
	}
	if v != "2" {
		t.Errorf("max_execution_time seen by a query with a 30 s deadline: %s, want 2", v)
	}
	// The deadline still cancels the query.
	short, cancel2 := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel2()
	start := time.Now()
	err := conn.QueryRow(Limits{MaxExecutionTime: 20 * time.Second}.Context(short), "SELECT count() FROM system.numbers WHERE NOT ignore(sipHash64(number))").Scan(new(uint64))
	if err == nil || time.Since(start) > 5*time.Second {
		t.Errorf("a query past its context's deadline: %v after %v, want it cancelled", err, time.Since(start))
	}
}
