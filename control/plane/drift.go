package plane

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/control"
	"github.com/tpflow/tpflow/control/api"
	"github.com/tpflow/tpflow/control/store"
)

// scrapeTimeout bounds the store queries of one scrape.
const scrapeTimeout = 5 * time.Second

// fleetCollector exports, on every scrape, the drift per group and IDC
// (tpflow_control_instances) and the rollouts per state
// (tpflow_control_rollouts), read from the store.
type fleetCollector struct {
	store     store.Store
	log       *slog.Logger
	instances *prometheus.Desc
	rollouts  *prometheus.Desc
	errors    prometheus.Counter
}

func newFleetCollector(s store.Store, log *slog.Logger) *fleetCollector {
	return &fleetCollector{
		store: s, log: log,
		instances: prometheus.NewDesc(MetricsPrefix+"instances",
			"Instances per group and IDC by what they report running: latest (their effective configuration), behind (another) or unknown (none).",
			[]string{"system", "app", "group", "idc", "state"}, nil),
		rollouts: prometheus.NewDesc(MetricsPrefix+"rollouts", "Rollouts per state.", []string{"state"}, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{Name: MetricsPrefix + "scrape_errors_total",
			Help: "Scrapes whose fleet metrics could not be read from the store."}),
	}
}

func (c *fleetCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.instances
	ch <- c.rollouts
	c.errors.Describe(ch)
}

func (c *fleetCollector) Collect(ch chan<- prometheus.Metric) {
	defer c.errors.Collect(ch)
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	rows, err := api.Drift(ctx, c.store, control.InstanceFilter{})
	if err != nil {
		c.errors.Inc()
		c.log.Warn("cannot read the drift for /metrics", "err", err)
		return
	}
	for _, r := range rows {
		for state, n := range map[string]int{"latest": r.Latest, "behind": r.Behind, "unknown": r.Unknown} {
			ch <- prometheus.MustNewConstMetric(c.instances, prometheus.GaugeValue, float64(n), r.System, r.App, r.Group, r.IDC, state)
		}
	}
	rs, err := c.store.Rollouts(ctx)
	if err != nil {
		c.errors.Inc()
		c.log.Warn("cannot read the rollouts for /metrics", "err", err)
		return
	}
	count := map[control.RolloutState]int{control.RolloutRunning: 0, control.RolloutPaused: 0, control.RolloutDone: 0, control.RolloutAborted: 0}
	for _, r := range rs {
		count[r.State]++
	}
	for st, n := range count {
		ch <- prometheus.MustNewConstMetric(c.rollouts, prometheus.GaugeValue, float64(n), string(st))
	}
}
