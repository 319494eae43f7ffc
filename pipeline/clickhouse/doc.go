// Package clickhouse stores tpflow's output in ClickHouse: numbered schema
// migrations generated for the server's version (Migrate, DDL), a batched
// Writer that retries while the server is down and marks bad input with
// ErrPermanent, and query helpers that read pane tables with FINAL and merge
// stored t-digest centroids in SQL (QueryTP, QueryPanes).
//
// Only the native protocol is used. The 18.16 baseline (Debian 12) always
// works; newer servers get LowCardinality, codecs, TTL and DateTime64 (see
// Features). DESIGN.md next to this file records the invariants.
package clickhouse
