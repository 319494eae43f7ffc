CREATE TABLE IF NOT EXISTS {{.DB}}.alerts
(
    ts                DateTime{{codec "DoubleDelta, ZSTD(1)"}},
    rule              {{lc}},
    state             {{lc}},
    value             Float64,
    system            {{lc}},
    app               {{lc}},
    group_name        {{lc}},
    idc               {{lc}},
    label_names       Array(String),
    label_values      Array(String),
    annotation_names  Array(String),
    annotation_values Array(String),
    fingerprint       UInt64,
    active_at         DateTime,
    fired_at          DateTime,
    resolved_at       DateTime
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY (rule, fingerprint, ts, state){{ttl "ts" .Retention.Alerts}}
