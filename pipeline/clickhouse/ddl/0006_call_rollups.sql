CREATE TABLE IF NOT EXISTS {{.DB}}.call_rollups
(
    pane_start       DateTime{{codec "DoubleDelta, ZSTD(1)"}},
    pane_seconds     UInt32,
    system           {{lc}},
    app              {{lc}},
    group_name       {{lc}},
    idc              {{lc}},
    method           {{lc}},
    count            UInt64,
    errors           UInt64,
    sum_us           Float64,
    min_us           Float64,
    max_us           Float64,
    p50_us           Float64,
    p90_us           Float64,
    p99_us           Float64,
    p999_us          Float64,
    centroid_means   Array(Float64){{codec "ZSTD(1)"}},
    centroid_weights Array(Float64){{codec "ZSTD(1)"}},
    version          UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(pane_start)
ORDER BY (system, app, group_name, idc, method, pane_start){{ttl "pane_start" .Retention.CallRollups}}
