CREATE TABLE IF NOT EXISTS {{.DB}}.metric_samples
(
    ts         DateTime{{codec "DoubleDelta, ZSTD(1)"}},
    system     {{lc}},
    app        {{lc}},
    group_name {{lc}},
    idc        {{lc}},
    env        {{lc}},
    host       {{lc}},
    namespace  {{lc}},
    pod        {{lc}},
    container  {{lc}},
    name       {{lc}},
    value      Float64{{codec "Gorilla, ZSTD(1)"}},
    kind       {{lc}}
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (name, system, app, group_name, idc, host, container, namespace, pod, env, ts){{ttl "ts" .Retention.MetricSamples}}
