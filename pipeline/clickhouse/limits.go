package clickhouse

import (
	"context"
	"errors"
	"time"

	ch "github.com/ClickHouse/clickhouse-go/v2"
)

// Limits bound what one read query may cost the server. They travel with
// the query as the settings max_execution_time and max_memory_usage, which
// every supported server (18.16 on) understands; a zero field sends
// nothing for it and leaves the server's own setting.
type Limits struct {
	// MaxExecutionTime is rounded up to whole seconds.
	MaxExecutionTime time.Duration
	// MaxMemoryUsage is in bytes.
	MaxMemoryUsage int64
}

// Context returns ctx carrying l as query settings: every query run with
// it on a connection of Open is bounded by l, also when ctx has a
// deadline (which still cancels the query).
func (l Limits) Context(ctx context.Context) context.Context {
	s := ch.Settings{}
	if l.MaxExecutionTime > 0 {
		// Servers before 19.x take integer settings only.
		s["max_execution_time"] = int((l.MaxExecutionTime + time.Second - 1) / time.Second)
	}
	if l.MaxMemoryUsage > 0 {
		s["max_memory_usage"] = int(l.MaxMemoryUsage)
	}
	if len(s) == 0 {
		return ctx
	}
	if _, ok := s["max_execution_time"]; ok {
		// clickhouse-go replaces max_execution_time with a context's
		// deadline + 5 s (v2.51, queryOptions), which would let the query
		// run past its limit; without the deadline it keeps ours, and ctx
		// still cancels the query when it is done.
		ctx = noDeadline{ctx}
	}
	return ch.Context(ctx, ch.WithSettings(s))
}

// noDeadline is a context without its Deadline: Done and Err are its own.
type noDeadline struct{ context.Context }

func (noDeadline) Deadline() (time.Time, bool) { return time.Time{}, false }

// The server's codes for a query stopped by Limits.
const (
	codeTimeoutExceeded     = 159
	codeMemoryLimitExceeded = 241
)

// OverLimit reports whether err is the server stopping a query at one of
// Limits, and which: "max_execution_time" or "max_memory_usage".
func OverLimit(err error) (string, bool) {
	var e *ch.Exception
	if !errors.As(err, &e) {
		return "", false
	}
	switch e.Code {
	case codeTimeoutExceeded:
		return "max_execution_time", true
	case codeMemoryLimitExceeded:
		return "max_memory_usage", true
	}
	return "", false
}
