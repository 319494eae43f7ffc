CREATE TABLE IF NOT EXISTS {{.DB}}.logs
(
    ts        {{if .F.DateTime64}}DateTime64(9){{else}}DateTime{{end}}{{codec "DoubleDelta, ZSTD(1)"}},
    ts_ns     UInt32,
    system    {{lc}},
    app       {{lc}},
    group_name {{lc}},
    idc       {{lc}},
    env       {{lc}},
    host      {{lc}},
    namespace {{lc}},
    pod       {{lc}},
    container {{lc}},
    stream    {{lc}},
    level     {{lc}},
    message   String{{codec "ZSTD(3)"}},
    source    {{lc}},
    source_id UInt64,
    offset    UInt64,
    unparsed  UInt8,
    truncated UInt8
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMMDD(ts)
ORDER BY (system, app, source_id, offset){{if .F.DateTime64}}{{ttl "toDateTime(ts)" .Retention.Logs}}{{else}}{{ttl "ts" .Retention.Logs}}{{end}}
