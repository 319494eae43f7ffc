CREATE TABLE IF NOT EXISTS {{.DB}}.operations
(
    id         UInt64,
    ts         DateTime{{codec "DoubleDelta, ZSTD(1)"}},
    who        {{lc}},
    target     String,
    action     {{lc}},
    system     {{lc}},
    app        {{lc}},
    group_name {{lc}},
    before     String,
    after      String,
    result     {{lc}},
    reason     String
)
ENGINE = ReplacingMergeTree
PARTITION BY toYYYYMM(ts)
ORDER BY id
