package sections

import (
	"io"

	"github.com/tpflow/tpflow/internal/config"
)

// keyDocs describes every key of Config in one line, by dotted path. A
// test fails when a key has no description, so a field added to any
// section must be documented here to appear in print-defaults.
var keyDocs = map[string]string{
	"aggregator":                    "Event-time panes and sliding windows of call latency per (system, app, group, idc, method).",
	"aggregator.pane":               "Length of a tumbling pane, the unit of emission; whole seconds.",
	"aggregator.windows":            "Sliding windows kept per key, each a multiple of pane, sliding by one pane.",
	"aggregator.allowed_lateness":   "Subtracted from a partition's highest event time to give its watermark.",
	"aggregator.grace":              "How long after a pane is final a late event still yields a corrected pane; later events go to the late path.",
	"aggregator.idle_timeout":       "How long a silent partition whose consumer is caught up (read to the high-water mark) may hold the watermark back.",
	"aggregator.future_tolerance":   "How far ahead of the wall clock an event may be dated; later ones are rejected (too_far_future). Must be below allowed_lateness; 0 picks allowed_lateness/3, at most 10s.",
	"aggregator.max_event_age":      "How far behind the wall clock an event may be dated; older ones are rejected (too_old). Must exceed allowed_lateness + grace.",
	"aggregator.max_keys":           "Cap on live keys; further keys fold into the method \"__other__\" of their app.",
	"aggregator.compression":        "T-digest compression of emitted pane digests (20-5000; higher is more accurate).",
	"aggregator.raw_buffer_limit":   "Raw latencies an open pane buffers before it switches to a live digest.",
	"aggregator.rollup":             "Rollup bucket: 5m also merges every key's final panes into one pane per 5 minutes, stored in call_rollups and read by dashboards and the API for long ranges; 0 turns it off.",
	"aggregator.rollup_compression": "t-digest compression of the 5-minute rollup panes (fewer centroids make day-long TP queries faster).",
	"aggregator.window_compression": "T-digest compression of the in-memory pane copies behind sliding windows (20 up to compression; lower uses less memory).",

	"aggregate":                "The aggregate role: its Kafka consumer group and how often it publishes panes.",
	"aggregate.group_id":       "Kafka consumer group of the aggregators; --group overrides.",
	"aggregate.flush_interval": "How often final panes are published and offsets committed (10ms-1h); --flush-interval overrides.",

	"kafka":                          "The Kafka cluster every role produces to and consumes from.",
	"kafka.brokers":                  "Bootstrap brokers, HOST:PORT each; --brokers overrides.",
	"kafka.topic_prefix":             "Prepended to every topic name (calls, logs, metrics, stats, alerts, dlq).",
	"kafka.partitions":               "Partition count of each topic when tpflow creates it; an absent topic keeps its default.",
	"kafka.partitions.calls":         "Partitions of the calls topic; bounds the aggregator's parallelism.",
	"kafka.partitions.logs":          "Partitions of the logs topic.",
	"kafka.partitions.metrics":       "Partitions of the metrics topic.",
	"kafka.partitions.stats":         "Partitions of the stats topic (final panes).",
	"kafka.partitions.alerts":        "Partitions of the alerts topic.",
	"kafka.partitions.dlq":           "Partitions of the dead-letter topic.",
	"kafka.partitions.late":          "Partitions of the late topic (calls past their pane's grace, for the late merger).",
	"kafka.replication_factor":       "Replication factor of the topics tpflow creates.",
	"kafka.compression":              "Producer batch compression: none, gzip, snappy, lz4 or zstd.",
	"kafka.max_message_bytes":        "Largest produced message (one event batch) before compression, in bytes.",
	"kafka.write_timeout":            "Bound on one produce request.",
	"kafka.batch_timeout":            "How long a producer waits to fill a request before it sends it (0-1m).",
	"kafka.session_timeout":          "How long a consumer group waits for a silent member (a killed process) before its partitions move: the failover time (6s-5m).",
	"kafka.tls":                      "TLS to the brokers.",
	"kafka.tls.enabled":              "Turn TLS on; the file keys below need it.",
	"kafka.tls.ca_file":              "PEM bundle of CAs to trust; empty means the system pool.",
	"kafka.tls.cert_file":            "PEM client certificate for mutual TLS; needs key_file.",
	"kafka.tls.key_file":             "PEM private key of cert_file.",
	"kafka.tls.server_name":          "Name the brokers' certificates must carry; empty means the host of each broker address.",
	"kafka.tls.insecure_skip_verify": "Skip verifying the brokers' certificates (testing only; off by default).",
	"kafka.sasl":                     "SASL authentication to the brokers.",
	"kafka.sasl.mechanism":           "plain, scram-sha-256 or scram-sha-512; empty disables SASL. SCRAM user names and passwords are prepared with SASLprep (RFC 4013).",
	"kafka.sasl.username":            "SASL user name.",
	"kafka.sasl.password":            "SASL password; ${NAME} is replaced by the environment variable NAME; printed as [REDACTED].",
	"kafka.sasl.password_file":       "File holding the SASL password (trailing newline trimmed), read at start instead of password.",

	"clickhouse":                               "Where the sink writes panes, logs, samples and alerts.",
	"clickhouse.dsn":                           "clickhouse://[USER[:PASSWORD]@]HOST:PORT[?OPTIONS] (native protocol), without the database; --clickhouse overrides.",
	"clickhouse.password":                      "Password of the DSN's user, so that the DSN holds none; ${NAME} is replaced by the environment variable NAME; printed as [REDACTED].",
	"clickhouse.password_file":                 "File holding the ClickHouse password (trailing newline trimmed), read at start instead of password.",
	"clickhouse.database":                      "Database of every tpflow table, created when missing; --clickhouse clickhouse://HOST:PORT/DB overrides.",
	"clickhouse.batch_rows":                    "Most rows in one insert; the sink flushes at this size.",
	"clickhouse.batch_age":                     "Age of the oldest buffered row that triggers an insert.",
	"clickhouse.max_retry_backoff":             "Cap on the exponential backoff between insert retries.",
	"clickhouse.retention_days":                "TTL of each table in days, set when the table is created; 0 keeps rows for ever.",
	"clickhouse.retention_days.call_panes":     "Days call panes are kept.",
	"clickhouse.retention_days.call_rollups":   "Days 5-minute call rollups are kept (they serve ranges of hours and days).",
	"clickhouse.retention_days.logs":           "Days log lines are kept.",
	"clickhouse.retention_days.metric_samples": "Days metric samples are kept.",
	"clickhouse.retention_days.resource_panes": "Days resource panes are kept.",
	"clickhouse.retention_days.alerts":         "Days alerts are kept.",

	"sink":          "The sink role: its Kafka consumer group and the topics it writes to ClickHouse.",
	"sink.group_id": "Kafka consumer group of the sinks; --group overrides.",
	"sink.topics":   "Topics (without prefix) the sink consumes: stats, logs, metrics, alerts.",

	"alert":                 "The alert role: rules files, evaluation, receivers and the state kept across restarts.",
	"alert.rules_files":     "Alert rules files (see alerting/DESIGN.md); every one must validate; --rules overrides.",
	"alert.state_file":      "Where alert state is saved after each evaluation and restored at start; empty keeps it in memory.",
	"alert.eval_interval":   "How often the rules are evaluated (10ms-1h).",
	"alert.alertmanagers":   "Base URLs of the Alertmanagers (API v2) every alert is sent to, e.g. http://am-0:9093.",
	"alert.webhooks":        "Webhook receivers in Alertmanager's webhook format, each {url, secret} and optionally name, timeout, max_attempts, min_backoff, max_backoff, queue_size, batch_size and external_url (notify.WebhookConfig; left out, the defaults); a secret (or secret_file, a file holding it; ${NAME} expands an environment variable) signs each attempt's timestamp and body with HMAC-SHA256 (X-Tpflow-Timestamp, X-Tpflow-Signature; alerting/DESIGN.md shows the check) and is printed as [REDACTED].",
	"alert.resend_interval": "How often a firing or resolved alert is sent again.",
	"alert.group_id":        "Kafka consumer group reading the stats topic.",
	"alert.logs_group_id":   "Kafka consumer group reading the logs topic for the log rules (log_pattern_rate, kernel_error_rate, app_error_rate); empty means group_id + \"-logs\".",

	"collect":                        "The collect role (node agent): log sources, topology labels, offsets, metrics and batching.",
	"collect.sources":                "Log sources, each {name, preset (kubernetes|docker), base, globs, roots, parser (perf-json|nginx|apache|none|custom), parse, container (auto|docker|cri|none), multiline, sample, min_level}; empty means one kubernetes source with the perf-json parser.",
	"collect.topology":               "YAML file of rules from namespace, pod and container names and file paths (match: {file: \"billing.log*\"}) to system, app, group, idc and env (see collectors/topology); empty leaves them empty.",
	"collect.host":                   "The host label; empty means the host name; --host overrides.",
	"collect.state_file":             "Absolute path of the file keeping acknowledged offsets across restarts; empty keeps them in memory; --state-file overrides.",
	"collect.save_interval":          "How often the state file is written.",
	"collect.rediscover_interval":    "How often the sources' globs are expanded again; new files are found at once from directory events, this rescan is the safety net.",
	"collect.tail":                   "How log files are read.",
	"collect.tail.start":             "Where a file present at the very first start (no state file) is read from: beginning or end; every other file is read from its beginning.",
	"collect.tail.poll_interval":     "Period of the stat check that covers file events the watcher dropped.",
	"collect.tail.partial_timeout":   "How long bytes without a newline wait before they are shipped flagged partial.",
	"collect.tail.rotate_wait":       "How long a renamed or deleted file is still read, beside the new file at the path, after its last growth.",
	"collect.tail.max_line_bytes":    "Longest line kept; the rest is dropped and the line flagged truncated.",
	"collect.tail.read_buffer_bytes": "Size of one read from a file.",
	"collect.tail.min_read_interval": "Least time between two reads woken by file events, so that many small writes are read at once (0-1s).",
	"collect.metrics":                "Where node, container and kernel statistics come from.",
	"collect.metrics.cgroup_root":    "The cgroup mount (a host mount inside a container).",
	"collect.metrics.cgroup_version": "auto, v1 or v2.",
	"collect.metrics.proc_root":      "The proc file system of the node.",
	"collect.metrics.kmsg":           "Kernel log device (or a file of records) read from its start for kernel errors; empty disables.",
	"collect.metrics.file_systems":   "Mount points whose usage is sampled.",
	"collect.metrics.interval":       "Time between samples of the node and its containers (at least 1s).",
	"collect.metrics_enabled":        "Sample cgroups, /proc and file systems to the metrics topic.",
	"collect.batch":                  "When event batches are cut and how many wait for Kafka.",
	"collect.batch.max_bytes":        "Byte budget of one batch message, encoded, before compression: a record that would go over it goes into the next batch, a larger one is cut; with compression's worst case and framing it must fit kafka.max_message_bytes (checked at start).",
	"collect.batch.max_events":       "Event count that cuts a batch.",
	"collect.batch.max_age":          "Age of a batch's first event that cuts it (1ms-1m).",
	"collect.batch.max_in_flight":    "Cut batches that may wait for Kafka before reading stops (backpressure).",
	"collect.call_time":              "Event time a call may have around the collector's clock; a line outside is kept as a log event flagged too_old or too_far_future, with no call.",
	"collect.call_time.max_past":     "How far behind the clock a call may be (1m-8784h).",
	"collect.call_time.max_future":   "How far ahead of the clock a call may be (1s-1h); keep it under the aggregator's clock-skew tolerance.",

	"broker":                    "The embedded Kafka-protocol broker of `tpflow broker` and `tpflow run`.",
	"broker.listen":             "HOST:PORT the broker accepts Kafka clients on (port 0 picks one); --listen overrides for `tpflow broker`.",
	"broker.advertise":          "HOST:PORT the broker tells clients to connect to; empty means listen.",
	"broker.data_dir":           "Directory keeping topics, offsets and groups across restarts; empty keeps them in memory; --data-dir overrides.",
	"broker.retention":          "How long records are kept; 0 keeps them for ever (`tpflow run` caps it at 2h).",
	"broker.retention_bytes":    "Cap on each partition's size in bytes; 0 means no cap (`tpflow run` caps it at 1 GiB).",
	"broker.sync_writes":        "Fsync every produced batch before acknowledging it; needs data_dir; --sync-writes sets it.",
	"broker.max_message_bytes":  "Largest record batch the broker accepts (1 KiB-256 MiB); raised to fit kafka.max_message_bytes.",
	"broker.http_listen":        "HOST:PORT `tpflow broker` serves /metrics, /healthz and /readyz on (port 0 picks one, logged at start-up); empty serves none.",
	"broker.sasl":               "Make every client authenticate with SASL as the one user below (a superuser); the clients use the same values in kafka.sasl.",
	"broker.sasl.mechanism":     "plain, scram-sha-256 or scram-sha-512; empty: no authentication.",
	"broker.sasl.username":      "The broker's SASL user.",
	"broker.sasl.password":      "The broker's SASL password; ${NAME} is replaced by the environment variable NAME; printed as [REDACTED].",
	"broker.sasl.password_file": "File holding the broker's SASL password (trailing newline trimmed), read at start instead of password.",

	"api":                  "Bounds on the query API (api role and tpflow run) and its ClickHouse queries.",
	"api.max_concurrent":   "Requests each API path serves at a time; the next ones are answered 503 with Retry-After.",
	"api.timeout":          "Bound on one API request's queries, sent as their max_execution_time; whole seconds.",
	"api.max_memory_usage": "max_memory_usage of every API and capacity report query, in bytes.",

	"http":                      "The HTTP listener of every role but the broker (broker.http_listen): /metrics, /healthz, /readyz and the role's own paths.",
	"http.listen":               "HOST:PORT to serve on; --listen overrides.",
	"http.pprof_listen":         "Loopback HOST:PORT (127.0.0.1, ::1 or localhost) serving the Go profiler under /debug/pprof/ on a listener of its own; empty serves no profiler.",
	"http.tls":                  "TLS of the HTTP listener (and broker.http_listen), as in the Prometheus web configuration file; off without cert_file.",
	"http.tls.cert_file":        "PEM server certificate (with its chain); read again when the file changes, so renewals need no restart.",
	"http.tls.key_file":         "PEM private key of cert_file.",
	"http.tls.client_ca_file":   "PEM bundle of the CAs client certificates are verified against.",
	"http.tls.client_auth_type": "NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert (needs client_ca_file).",
	"http.tls.min_version":      "Lowest TLS version accepted: TLS12 or TLS13.",
	"http.auth":                 "Who may call the HTTP listener (and broker.http_listen); off without users, tokens and client_certs. When on, /healthz stays open, GET and HEAD need role viewer, every other method operator.",
	"http.auth.users":           "Basic-auth users: name, role (viewer, operator or admin), password_bcrypt or password_bcrypt_file.",
	"http.auth.tokens":          "Bearer tokens: name, role (viewer, operator or admin), and sha256 (hex SHA-256 of the token), sha256_file, token or token_file.",
	"http.auth.client_certs":    "Client certificates verified against http.tls.client_ca_file: common_name (the subject CN) and role; used when a request sends no Authorization header.",
	"http.auth.metrics":         "authenticated: /metrics and /readyz need role viewer; open: they are served to anyone.",
	"http.auth.max_failures":    "Wrong credentials a client IP address may send in a burst, refilled over failure_window; past it the address is answered 429 with Retry-After (requests without credentials do not count).",
	"http.auth.failure_window":  "Period over which max_failures refills.",
	"log":                       "Structured logging (log/slog) to standard error.",
	"log.level":                 "debug, info, warn or error.",
	"log.format":                "text or json.",
}

// WriteConfig prints cfg, loaded from the file called name, like
// WriteDefaults, each comment giving the value in effect. No secret is
// shown: a config.Secret prints as [REDACTED] and the password of a URL
// (a DSN) as xxxxx, so the output is for reading, not for loading back.
func WriteConfig(w io.Writer, cfg Config, name string) error {
	return config.WriteDocumented(w, cfg, keyDocs,
		"# tpflow configuration in effect, loaded from "+name+" with the defaults and flags.\n"+
			"# Each \"Default:\" is the value in effect; secrets are shown as [REDACTED].\n")
}

// WriteDefaults prints cfg as YAML with a one-line comment above every key
// that describes it and gives its default. The output loads back to cfg.
func WriteDefaults(w io.Writer, cfg Config) error {
	return config.WriteDocumented(w, cfg, keyDocs,
		"# tpflow configuration: one file for every role.\n"+
			"# Every key is optional; an absent key keeps the default shown here.\n"+
			"# Durations are Go durations (\"500ms\", \"10s\", \"1m\", \"24h\"); sizes are bytes.\n")
}
