package dashboards

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/aggregator/resource"
	"github.com/tpflow/tpflow/collectors/collect"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline/kafka"
)

// capture is a Registerer that records the names of the metrics registered
// on it, vectors without children included.
type capture map[string]bool

var fqNameRe = regexp.MustCompile(`fqName: "([^"]+)"`)

func (c capture) Register(col prometheus.Collector) error {
	ch := make(chan *prometheus.Desc)
	go func() { col.Describe(ch); close(ch) }()
	for d := range ch {
		if m := fqNameRe.FindStringSubmatch(d.String()); m != nil {
			c[m[1]] = true
		}
	}
	return nil
}

func (c capture) MustRegister(cs ...prometheus.Collector) {
	for _, col := range cs {
		_ = c.Register(col)
	}
}

func (c capture) Unregister(prometheus.Collector) bool { return false }

// metricOptsRe matches a metric name given to a prometheus.*Opts literal.
var metricOptsRe = regexp.MustCompile(`Name:\s*"(tpflow_[a-z0-9_]+)"`)

// registeredMetrics returns the names our roles export: those registered
// in-process by the engines, the node agent, the Kafka layer, the DLQ and
// the process collector the role commands install, plus every full
// "tpflow_..." name given as Name: in a metric's options in the non-test Go
// source outside this package, whose own literals would prove nothing (the
// sink, aggregate and alert roles register theirs inside Run, which needs
// running services).
func registeredMetrics(t *testing.T) capture {
	t.Helper()
	c := capture{}
	if _, err := aggregator.New(aggregator.DefaultConfig(), aggregator.WithRegisterer(c)); err != nil {
		t.Fatal(err)
	}
	if _, err := resource.New(aggregator.DefaultConfig(), resource.WithRegisterer(c)); err != nil {
		t.Fatal(err)
	}
	if _, err := kafka.NewMetrics(c); err != nil {
		t.Fatal(err)
	}
	dlq, err := kafka.NewDLQ(kafka.DefaultConfig(), nil, c, nil)
	if err != nil {
		t.Fatal(err)
	}
	dlq.Close()
	acfg := collect.DefaultConfig()
	acfg.Host = "test"
	if _, err := collect.New(acfg, kafka.DefaultConfig(), role.Settings{Registerer: c}); err != nil {
		t.Fatal(err)
	}
	c.MustRegister(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}), collectors.NewGoCollector())

	root := "../.."
	processCollector := false
	err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && p != root || d.Name() == "testdata" || d.Name() == "dashboards") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		for _, m := range metricOptsRe.FindAllStringSubmatch(string(src), -1) {
			c[m[1]] = true
		}
		if strings.HasPrefix(filepath.ToSlash(p), "../../internal/cli/") && strings.Contains(string(src), "NewProcessCollector") {
			processCollector = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if !processCollector {
		t.Error("no role command registers the process collector; the process_* panels would be empty")
	}
	return c
}

var (
	promStringRe = regexp.MustCompile(`"(?:[^"\\]|\\.)*"`)
	promBraceRe  = regexp.MustCompile(`\{[^}]*\}`)
	promRangeRe  = regexp.MustCompile(`\[[^\]]*\]`)
	promGroupRe  = regexp.MustCompile(`\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdentRe  = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*(\s*\()?`)
	promKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true, "by": true, "without": true,
		"on": true, "ignoring": true, "group_left": true, "group_right": true, "inf": true, "nan": true}
)

// promMetrics returns the metric names an expression reads: identifiers
// that are not functions, aggregations, keywords, label names or durations.
func promMetrics(expr string) []string {
	e := promStringRe.ReplaceAllString(expr, `""`)
	e = promBraceRe.ReplaceAllString(e, " ")
	e = promRangeRe.ReplaceAllString(e, " ")
	e = promGroupRe.ReplaceAllString(e, " ")
	var out []string
	for _, ix := range promIdentRe.FindAllStringSubmatchIndex(e, -1) {
		if ix[0] > 0 && e[ix[0]-1] >= '0' && e[ix[0]-1] <= '9' {
			continue // the unit of a number, as in 5m
		}
		name := strings.TrimRight(e[ix[0]:ix[1]], " (")
		if ix[2] >= 0 || promKeywords[strings.ToLower(name)] {
			continue
		}
		out = append(out, name)
	}
	return out
}

func TestPromMetrics(t *testing.T) {
	got := promMetrics(`sum by (topic, reason) (rate(tpflow_dlq_messages_total{topic="a b", x=~"y"}[$__rate_interval])) / on (job) group_left max(up) > bool 0 offset 5m`)
	if strings.Join(got, ",") != "tpflow_dlq_messages_total,up" {
		t.Fatalf("promMetrics = %v", got)
	}
}

// TestPrometheusPanelsUseRegisteredMetrics checks that every metric a
// Prometheus panel reads is one our roles export.
func TestPrometheusPanelsUseRegisteredMetrics(t *testing.T) {
	reg := registeredMetrics(t)
	if !reg["tpflow_aggregate_late_events_total"] || !reg["tpflow_sink_rows_total"] || !reg["process_cpu_seconds_total"] || !reg["tpflow_collect_lines_total"] {
		t.Fatalf("the registry scan misses known metrics: %d names", len(reg))
	}
	queries := 0
	for _, d := range generated(t) {
		for _, p := range d.Panels {
			if p.Datasource.UID != PrometheusUID {
				continue
			}
			for _, q := range p.Targets {
				queries++
				names := promMetrics(q.Expr)
				if len(names) == 0 {
					t.Errorf("%s/%s/%s: %q reads no metric", d.UID, p.Title, q.RefID, q.Expr)
				}
				for _, n := range names {
					if !reg[n] {
						t.Errorf("%s/%s/%s: metric %s is not exported by any role", d.UID, p.Title, q.RefID, n)
					}
				}
			}
		}
	}
	if queries == 0 {
		t.Fatal("no Prometheus queries in the dashboards")
	}
	t.Logf("%d Prometheus queries checked against %d exported metric names", queries, len(reg))
}
