CREATE TABLE IF NOT EXISTS {{.DB}}.resource_panes
(
    pane_start   DateTime{{codec "DoubleDelta, ZSTD(1)"}},
    pane_seconds UInt32,
    system       {{lc}},
    app          {{lc}},
    group_name   {{lc}},
    idc          {{lc}},
    host         {{lc}},
    container    {{lc}},
    name         {{lc}},
    count        UInt64,
    avg          Float64,
    max          Float64,
    p95          Float64,
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
PARTITION BY toYYYYMMDD(pane_start)
ORDER BY (system, app, group_name, idc, name, host, container, pane_start){{ttl "pane_start" .Retention.ResourcePanes}}
