// Package alert runs the alert role: it reads the final panes of the stats
// topic back into an aggregator.Engine, evaluates the alert rules over its
// windows with an alerting.Manager and sends what needs sending to
// Alertmanagers and webhooks. DESIGN.md next to this file records when
// stats offsets are committed and how rules are reloaded.
package alert

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kafkago "github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/tpflow/tpflow/aggregator"
	"github.com/tpflow/tpflow/alerting"
	"github.com/tpflow/tpflow/alerting/notify"
	"github.com/tpflow/tpflow/pipeline"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
	"github.com/tpflow/tpflow/schemas/tpflowpb"
)

// commitInterval is how often the offsets of the panes added to the engine
// are committed.
const commitInterval = time.Second

// Option configures Run beyond its configuration.
type Option func(*options)

type options struct {
	classify func(msg string) []string
	alerts   func(list func() []alerting.Alert)
}

// WithAlerts hands f, once the role has started, a function that lists the
// current pending, firing and resolved alerts (alerting.Manager.Alerts),
// for a process that shows them, such as tpflow run's live view.
func WithAlerts(f func(list func() []alerting.Alert)) Option {
	return func(o *options) { o.alerts = f }
}

// WithKernelClassifier gives the kernel_error_rate rules the classes of a
// kernel message: the node collector's kernel error filter, so that both
// agree on what a class is. Without it kernel rules count nothing.
func WithKernelClassifier(f func(msg string) []string) Option {
	return func(o *options) { o.classify = f }
}

// ErrNoRules is returned by Run when no rules file is configured.
var ErrNoRules = errors.New("no alert rules files configured (alert.rules_files or --rules)")

// Run consumes the stats topic of kcfg in the group cfg.GroupID into an
// aggregator.Engine configured by aggCfg, evaluates the rules of
// cfg.RulesFiles every cfg.EvalInterval and notifies the configured
// Alertmanagers and webhooks, until ctx is done. A rules file that does not
// validate at start is an error; later, on SIGHUP or when a file's
// modification time changes, the rules are reloaded and an invalid edit
// keeps the previous rules with a warning. Alert state is restored from
// cfg.StateFile at start and saved after each evaluation. reg and log may
// be nil.
func Run(ctx context.Context, kcfg kafka.Config, aggCfg aggregator.Config, cfg Config, reg prometheus.Registerer, log *slog.Logger, opts ...Option) error {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	if len(cfg.RulesFiles) == 0 {
		return ErrNoRules
	}
	m, err := newMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	rules := &alerting.RuleSet{}
	if _, err := Check(cfg.RulesFiles...); err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	counter := alerting.NewLogCounter(alerting.DefaultLogCounterConfig(), o.classify)
	m.logCounter(counter)
	rl := newReloader(cfg.RulesFiles, rules, aggCfg, m, log)
	rl.onLoad = counter.SetRules
	if err := rl.load(); err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	aggOpts := []aggregator.Option{aggregator.WithLogger(log)}
	if reg != nil {
		aggOpts = append(aggOpts, aggregator.WithMetrics(reg, MetricsPrefix))
	}
	eng, err := aggregator.New(aggCfg, aggOpts...)
	if err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}

	senders, err := newSenders(cfg, m, log)
	if err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	mcfg := alerting.DefaultConfig()
	mcfg.Interval = cfg.EvalInterval
	mcfg.ResendDelay = cfg.ResendInterval
	mcfg.StateFile = cfg.StateFile
	notifyFn := func(_ context.Context, as []alerting.Alert) {
		m.notified.Add(float64(len(as)))
		out := notify.FromAlerts(as, "")
		for _, s := range senders {
			s.Enqueue(out)
		}
	}
	mgr, err := alerting.NewManager(mcfg, rules, eng, notifyFn, nil, log)
	if err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	mgr.SetLogCounter(counter)
	resources := alerting.NewResourceStore(horizon(aggCfg))
	mgr.SetResourceStore(resources)
	if cfg.StateFile != "" {
		if err := mgr.RestoreState(cfg.StateFile); err != nil {
			return fmt.Errorf("cannot start alert role: %w", err)
		}
	}

	if err := kafka.EnsureTopics(ctx, kcfg); err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	km, err := kafka.NewMetrics(reg)
	if err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	dlq, err := kafka.NewDLQ(kcfg, codec.Reason, reg, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer dlq.Close()
	cons, err := kafka.NewConsumer(kcfg, kcfg.Topic(kafka.TopicStats), cfg.GroupID, log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer cons.Close()
	logsCons, err := kafka.NewConsumer(kcfg, kcfg.Topic(kafka.TopicLogs), cfg.logsGroup(), log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer logsCons.Close()
	lr := &logReader{counter: counter, m: m, log: log, now: time.Now,
		dec: codec.DecodeOptions{MaxBytes: kcfg.MaxMessageBytes}, marker: newMarker("logs", log)}

	aprod, err := kafka.NewProducer(kcfg, kcfg.Topic(kafka.TopicAlerts), log, kafka.WithMetrics(km))
	if err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	defer aprod.Close()
	pub, err := newPublisher(aprod, reg, log)
	if err != nil {
		return fmt.Errorf("cannot start alert role: %w", err)
	}
	mgr.OnStateChange(pub.enqueue)
	if o.alerts != nil {
		o.alerts(mgr.Alerts)
	}

	started := time.Now()
	r := &reader{
		eng: eng, res: resources, dlq: dlq, m: m, log: log, now: time.Now,
		dec:     codec.DecodeOptions{MaxBytes: kcfg.MaxMessageBytes},
		horizon: horizon(aggCfg),
		marker:  newMarker("stats", log),
	}

	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The senders outlive the evaluator so that what its last evaluation
	// queued is still sent: they stop after everything else.
	sendCtx, stopSend := context.WithCancel(context.WithoutCancel(ctx))
	var swg sync.WaitGroup
	for _, s := range senders {
		swg.Add(1)
		go func() {
			defer swg.Done()
			_ = s.Run(sendCtx)
		}()
	}
	swg.Add(1)
	go func() {
		defer swg.Done()
		pub.run(sendCtx)
	}()
	defer func() {
		stopSend()
		swg.Wait()
	}()
	warm := warmup(aggCfg, kcfg)
	ready := false

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return r.consume(gctx, cons) })
	g.Go(func() error { return r.commitLoop(gctx, cons) })
	g.Go(func() error { return lr.consume(gctx, logsCons) })
	g.Go(func() error { return lr.commitLoop(gctx, logsCons) })
	g.Go(func() error {
		t := time.NewTicker(cfg.EvalInterval)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-hup:
				log.Info("reloading alert rules on SIGHUP")
				_ = rl.load()
				continue
			case <-t.C:
			}
			if rl.changed() {
				_ = rl.load()
			}
			// After a start the windows hold only what arrived since: until
			// a current pane is in, or the warm-up has passed, an empty
			// window would resolve alerts that still hold.
			if !ready {
				fresh := time.Now().Add(-2*aggCfg.Pane - aggCfg.AllowedLateness).UnixMilli()
				if r.newestEnd.Load() < fresh && time.Since(started) < warm {
					continue
				}
				ready = true
			}
			mgr.Tick(gctx)
			m.evaluations.Inc()
		}
	})
	err = g.Wait()
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// sender is what Run needs of a notify sender.
type sender interface {
	Enqueue(as []notify.Alert)
	Run(ctx context.Context) error
}

// newSenders builds one Alertmanager sender for every configured
// Alertmanager and one webhook sender per webhook.
func newSenders(cfg Config, m *metrics, log *slog.Logger) ([]sender, error) {
	var out []sender
	if len(cfg.Alertmanagers) > 0 {
		acfg := notify.DefaultAlertmanagerConfig()
		acfg.URLs = cfg.Alertmanagers
		am, err := notify.NewAlertmanager(acfg, nil, log)
		if err != nil {
			return nil, err
		}
		m.sender("alertmanager", am.Sent, am.Failed, am.Dropped)
		out = append(out, am)
	}
	for i, w := range cfg.Webhooks {
		wh, err := notify.NewWebhook(w.WithDefaults(), nil, nil, log)
		if err != nil {
			return nil, err
		}
		m.sender(fmt.Sprintf("webhook-%d", i), wh.Delivered, wh.Failed, wh.Dropped)
		out = append(out, wh)
	}
	if len(out) == 0 {
		log.Warn("no alertmanagers or webhooks configured: alerts are evaluated and their state changes written to the alerts topic, but not sent")
	}
	return out, nil
}

// warmup is the longest a started role waits for a fresh pane before it
// evaluates anyway: two panes, the allowed lateness and the idle time-out,
// by when an aggregator that sees traffic has published one, and the
// session time-out, which a killed predecessor may hold the group for.
func warmup(c aggregator.Config, k kafka.Config) time.Duration {
	return 2*c.Pane + c.AllowedLateness + c.IdleTimeout + k.SessionTimeout
}

// horizon is how far back from now a pane can still matter: the longest
// window, the grace during which it may be corrected, and one pane.
func horizon(c aggregator.Config) time.Duration {
	var w time.Duration
	for _, d := range c.Windows {
		w = max(w, d)
	}
	return w + c.Grace + c.Pane
}

// reader feeds the stats topic into the engine and commits what it holds.
type reader struct {
	eng     *aggregator.Engine
	res     *alerting.ResourceStore
	dlq     *kafka.DLQ
	m       *metrics
	log     *slog.Logger
	now     func() time.Time
	dec     codec.DecodeOptions
	horizon time.Duration

	batch    codec.Batch
	rp       tpflowpb.ResourcePane
	pb       tpflowpb.PaneStat
	ps       aggregator.PaneStat
	lastWarn time.Time

	*marker // the messages whose panes are in the engine

	newestEnd atomic.Int64 // the latest end (Unix ms) of a pane added
}

// marker remembers, per partition, the last message that was handled and
// commits them.
type marker struct {
	topic  string
	log    *slog.Logger
	mu     sync.Mutex
	marked map[int]kafkago.Message
}

func newMarker(topic string, log *slog.Logger) *marker {
	return &marker{topic: topic, log: log, marked: map[int]kafkago.Message{}}
}

func (mk *marker) mark(msg kafkago.Message) {
	mk.mu.Lock()
	mk.marked[msg.Partition] = msg
	mk.mu.Unlock()
}

// consume reads stats messages until ctx is done.
func (r *reader) consume(ctx context.Context, c *kafka.Consumer) error {
	for {
		msg, err := c.Fetch(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("cannot read stats: %w", err)
		}
		if err := r.handle(ctx, msg); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		r.mark(msg)
	}
}

// handle puts the panes of one stats message into the engine. A message
// that cannot be decoded, or holds a pane that cannot, goes to the DLQ; its
// good panes are kept.
func (r *reader) handle(ctx context.Context, msg kafkago.Message) error {
	r.m.messages.Inc()
	bad := r.dec.Decode(msg.Value, &r.batch)
	if bad == nil {
		cutoff := r.now().Add(-r.horizon).UnixMilli()
		for _, raw := range r.batch.Panes {
			if err := r.add(raw, cutoff); err != nil {
				bad = fmt.Errorf("cannot decode pane at %s/%d@%d: %w", msg.Topic, msg.Partition, msg.Offset, err)
			}
		}
		for _, raw := range r.batch.ResourcePanes {
			if err := r.addResource(raw, cutoff); err != nil {
				bad = fmt.Errorf("cannot decode resource pane at %s/%d@%d: %w", msg.Topic, msg.Partition, msg.Offset, err)
			}
		}
	}
	if bad == nil {
		return nil
	}
	r.m.badMessages.Inc()
	if err := r.dlq.Send(ctx, msg, pipeline.Permanent(bad)); err != nil {
		return fmt.Errorf("cannot dead-letter stats message %d/%d: %w", msg.Partition, msg.Offset, err)
	}
	return nil
}

// add converts one encoded PaneStat of r.batch and adds it to the engine.
// Panes that ended before cutoff are skipped: they are outside every window.
func (r *reader) add(raw []byte, cutoff int64) error {
	p := &r.pb
	if err := proto.Unmarshal(raw, p); err != nil {
		return errors.Join(codec.ErrMalformed, err)
	}
	ps := &r.ps
	if err := aggregator.PaneFromProto(ps, &r.batch, p); err != nil {
		return err
	}
	if ps.Rollup {
		// 5-minute rollups are for storage; windows are built from panes.
		r.m.panes.WithLabelValues("rollup").Inc()
		return nil
	}
	if ps.Start+ps.PaneMs < cutoff {
		r.m.panes.WithLabelValues("stale").Inc()
		return nil
	}
	if err := r.eng.AddFinal(*ps); err != nil {
		// A pane of another length means the aggregators run with another
		// aggregator.pane: a configuration mismatch, not a bad message. A
		// pane outside the time model's range (a far-future start) is
		// rejected so that it cannot move the window edge past real panes.
		r.m.panes.WithLabelValues("rejected").Inc()
		if now := r.now(); now.Sub(r.lastWarn) > time.Minute {
			r.lastWarn = now
			if errors.Is(err, aggregator.ErrPaneLength) {
				r.log.Warn("cannot add pane; is aggregator.pane the same as the aggregators'?", "err", err)
			} else {
				r.log.Warn("pane rejected", "err", err)
			}
		}
		return nil
	}
	r.m.panes.WithLabelValues("added").Inc()
	r.noteEnd(p.PaneStartUnixMs + int64(p.PaneMs))
	return nil
}

// noteEnd records the end of a pane read, for the warm-up after a start.
func (r *reader) noteEnd(end int64) {
	if end > r.newestEnd.Load() {
		r.newestEnd.Store(end)
	}
}

// addResource converts one encoded ResourcePane of r.batch and stores it
// if a resource measure reads its metric.
func (r *reader) addResource(raw []byte, cutoff int64) error {
	p := &r.rp
	if err := proto.Unmarshal(raw, p); err != nil {
		return errors.Join(codec.ErrMalformed, err)
	}
	b := &r.batch
	if int(p.Labels) >= b.NumLabelSets() || int(p.Name) >= len(b.Symbols) {
		return codec.ErrBadReference
	}
	if p.PaneStartUnixMs+int64(p.PaneMs) < cutoff {
		r.m.panes.WithLabelValues("stale").Inc()
		return nil
	}
	ok := r.res.Add(alerting.ResourcePane{
		Key: alerting.ResourceKey{
			System: b.Label(p.Labels, schemas.LabelSystem), App: b.Label(p.Labels, schemas.LabelApp),
			Group: b.Label(p.Labels, schemas.LabelGroup), IDC: b.Label(p.Labels, schemas.LabelIDC),
			Host: b.Label(p.Labels, schemas.LabelHost), Container: b.Label(p.Labels, schemas.LabelContainer),
			Name: b.Symbol(p.Name),
		},
		Start: p.PaneStartUnixMs, PaneMs: int64(p.PaneMs), Version: p.Version, Count: p.Count, Sum: p.Sum,
	})
	if ok {
		r.m.panes.WithLabelValues("resource").Inc()
	}
	r.noteEnd(p.PaneStartUnixMs + int64(p.PaneMs))
	return nil
}

// commitLoop commits, every commitInterval and once more when ctx is done,
// the offsets of the messages whose panes are in the engine.
func (r *marker) commitLoop(ctx context.Context, c *kafka.Consumer) error {
	t := time.NewTicker(commitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			r.commit(cctx, c)
			return nil
		case <-t.C:
			r.commit(ctx, c)
		}
	}
}

func (r *marker) commit(ctx context.Context, c *kafka.Consumer) {
	r.mu.Lock()
	msgs := make([]kafkago.Message, 0, len(r.marked))
	for _, msg := range r.marked {
		msgs = append(msgs, msg)
	}
	clear(r.marked)
	r.mu.Unlock()
	if len(msgs) == 0 {
		return
	}
	if err := c.Commit(ctx, msgs...); err != nil {
		r.log.Warn("cannot commit offsets, will retry", "topic", r.topic, "err", err)
		r.mu.Lock()
		for _, msg := range msgs {
			if cur, ok := r.marked[msg.Partition]; !ok || cur.Offset < msg.Offset {
				r.marked[msg.Partition] = msg
			}
		}
		r.mu.Unlock()
	}
}

// Check reads and validates rules files offline, as Run does at start:
// every file must validate and no rule name may be used twice. The error
// joins every problem, each as a *alerting.ValidationError with its file
// and line where it has one.
func Check(files ...string) ([]*alerting.Rule, error) {
	var all []*alerting.Rule
	var errs []error
	seen := map[string]*alerting.Rule{}
	for _, f := range files {
		rules, err := alerting.LoadFile(f)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, r := range rules {
			if first, dup := seen[r.Name]; dup {
				errs = append(errs, &alerting.ValidationError{File: r.File, Line: r.Line, Rule: r.Name, Field: "name",
					Msg: fmt.Sprintf("duplicate rule name (first defined at %s:%d)", first.File, first.Line)})
				continue
			}
			seen[r.Name] = r
			all = append(all, r)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return all, nil
}

// reloader loads the rules files into a RuleSet and notices when they
// change on disk.
type reloader struct {
	files  []string
	rules  *alerting.RuleSet
	maxWin time.Duration
	m      *metrics
	log    *slog.Logger
	seen   map[string]fileStamp
	// onLoad, if set, is called with the rules of each successful load.
	onLoad func([]*alerting.Rule)
	// loaded is set once a rule set was loaded: later failures are bad
	// edits, logged as such.
	loaded bool
}

// fileStamp is what identifies a version of a file without reading it.
type fileStamp struct {
	mod  time.Time
	size int64
}

func newReloader(files []string, rules *alerting.RuleSet, aggCfg aggregator.Config, m *metrics, log *slog.Logger) *reloader {
	var w time.Duration
	for _, d := range aggCfg.Windows {
		w = max(w, d)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &reloader{files: slices.Clone(files), rules: rules, maxWin: w, m: m, log: log}
}

func (rl *reloader) stamps() map[string]fileStamp {
	out := make(map[string]fileStamp, len(rl.files))
	for _, f := range rl.files {
		if fi, err := os.Stat(f); err == nil {
			out[f] = fileStamp{fi.ModTime(), fi.Size()}
		}
	}
	return out
}

// changed reports whether a file's modification time or size differs from
// the last load attempt.
func (rl *reloader) changed() bool {
	now := rl.stamps()
	if len(now) != len(rl.seen) {
		return true
	}
	for f, s := range now {
		if old, ok := rl.seen[f]; !ok || !old.mod.Equal(s.mod) || old.size != s.size {
			return true
		}
	}
	return false
}

// load loads the rules files; on error the previous rules stay in force
// and the error is logged and returned.
func (rl *reloader) load() error {
	rl.seen = rl.stamps()
	if err := rl.rules.Load(rl.files...); err != nil {
		rl.m.reloads.WithLabelValues("error").Inc()
		if rl.loaded {
			rl.log.Warn("invalid alert rules; keeping the previous ones", "err", err)
		}
		return err
	}
	rl.loaded = true
	rl.m.reloads.WithLabelValues("ok").Inc()
	rs := rl.rules.Rules()
	if rl.onLoad != nil {
		rl.onLoad(rs)
	}
	rl.m.rules.Set(float64(len(rs)))
	for _, r := range rs {
		if r.Window > rl.maxWin {
			rl.log.Warn("rule window is longer than the longest aggregator window; it sees only that much",
				"rule", r.Name, "window", r.Window, "longest", rl.maxWin)
		}
	}
	rl.log.Info("loaded alert rules", "rules", len(rs), "files", len(rl.files))
	return nil
}
