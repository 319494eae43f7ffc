// Package agent is the node collector behind `tpflow collect`: it follows
// the node's log files (collectors/logtail) with one shared file watcher,
// unwraps container lines, joins multi-line records and parses them
// (collectors/parse), labels them from the topology file
// (collectors/topology) and the log paths, reads cgroup, /proc, statfs
// and kernel messages (collectors/metrics), and produces event batches to
// the calls, logs and metrics topics. Calls and logs are committed in Kafka
// transactions together with the file offsets they advance, so a crash
// re-sends nothing that Kafka's read_committed consumers have; see
// DESIGN.md.
package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/collectors/logtail"
	"github.com/tpflow/tpflow/collectors/parse"
	"github.com/tpflow/tpflow/collectors/topology"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
)

// Agent is one node's collector. Run is called once.
type Agent struct {
	cfg   Config
	kcfg  kafka.Config
	log   *slog.Logger
	reg   prometheus.Registerer
	now   func() time.Time
	host  string
	topo  *topology.Topology
	cp    *logtail.Checkpoints
	m     *agentMetrics
	srcs  []*source
	calls int // partitions of the calls topic

	// readCtx is Run's context, for the tailers' pushes onto the send
	// queue; set before any tailer starts.
	readCtx context.Context

	bmu sync.Mutex // guards b; taken after a fileState's mu
	b   *batcher

	fmu   sync.Mutex
	files map[string]*tailed // by path

	connected atomic.Bool // Kafka answered and the topics exist

	kmsgMu    sync.Mutex
	kmsgAcked uint64 // next kernel record sequence not yet acknowledged
	kmsgBoot  string

	txn txnState // the last committed transaction
}

// tailed is one running Tailer.
type tailed struct {
	fs      *fileState
	t       *logtail.Tailer
	cancel  context.CancelFunc
	done    chan struct{}
	missing time.Time // when discovery last stopped finding the path
}

// source is a Source with what it resolves to.
type source struct {
	cfg          Source
	globs, roots []string
	parse        parse.Config
	maxLine      int
	sample       float64
	minLevel     int

	mLines, mTruncated, mDropped prometheus.Counter
}

func (s *source) container(t logtail.Target) string {
	switch c := s.cfg.Container; c {
	case ContainerDocker, ContainerCRI, ContainerNone:
		return c
	}
	switch t.Layout {
	case logtail.LayoutDocker:
		return ContainerDocker
	case logtail.LayoutKubernetes:
		return ContainerCRI
	}
	return ContainerNone
}

// Option configures an Agent.
type Option func(*Agent)

// WithLogger sets the logger; the default discards.
func WithLogger(l *slog.Logger) Option { return func(a *Agent) { a.log = l } }

// WithRegisterer registers the agent's metrics on r.
func WithRegisterer(r prometheus.Registerer) Option { return func(a *Agent) { a.reg = r } }

// New validates cfg, loads the topology file and the state file, and
// returns an Agent producing to the cluster of kcfg.
func New(cfg Config, kcfg kafka.Config, opts ...Option) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cannot start collector: %w", err)
	}
	if err := cfg.CheckBudget(kcfg); err != nil {
		return nil, fmt.Errorf("cannot start collector: %w", schemas.PrefixField("collect", err))
	}
	a := &Agent{cfg: cfg, kcfg: kcfg, log: slog.New(slog.DiscardHandler), now: time.Now, files: map[string]*tailed{}}
	for _, o := range opts {
		o(a)
	}
	a.host = cfg.Host
	if a.host == "" {
		h, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("cannot name this host (set collect.host): %w", err)
		}
		a.host = h
	}
	if cfg.Topology != "" {
		t, err := topology.Load(cfg.Topology)
		if err != nil {
			return nil, err
		}
		a.topo = t
	}
	a.m = newAgentMetrics(a.reg, a)
	sources := cfg.Sources
	if len(sources) == 0 {
		sources = []Source{{Name: PresetKubernetes, Preset: PresetKubernetes}}
	}
	for _, s := range sources {
		src := &source{cfg: s, parse: s.parseConfig(), sample: s.Sample}
		src.globs, src.roots = s.globsRoots()
		src.maxLine = cfg.Tail.MaxLineBytes
		if src.parse.Format != "" {
			src.maxLine = max(src.maxLine, src.parse.MaxLineBytes)
		}
		if src.sample == 0 {
			src.sample = 1
		}
		if s.MinLevel != "" {
			src.minLevel = levels[normLevel([]byte(s.MinLevel))]
		}
		src.mLines = a.m.lines.WithLabelValues(s.Name)
		src.mTruncated = a.m.truncated.WithLabelValues(s.Name)
		src.mDropped = a.m.dropped.WithLabelValues(s.Name)
		a.srcs = append(a.srcs, src)
	}
	if cfg.StateFile != "" {
		cp, err := logtail.LoadCheckpoints(cfg.StateFile)
		if err != nil {
			a.log.Warn("starting without saved offsets", "state_file", cfg.StateFile, "err", err)
		}
		a.cp = cp
		a.loadKmsgState()
	} else {
		a.cp = logtail.NewCheckpoints("")
	}
	return a, nil
}

// ErrNotConnected is returned by Ready until Kafka has answered.
var ErrNotConnected = errors.New("not connected to Kafka yet")

// Ready reports whether Run has reached Kafka and is reading; it is the
// readiness check of the collect role.
func (a *Agent) Ready(context.Context) error {
	if !a.connected.Load() {
		return ErrNotConnected
	}
	return nil
}

// Host returns the host label.
func (a *Agent) Host() string { return a.host }

// Run collects until ctx is done. It waits for Kafka and resumes from the
// offsets committed there before it starts reading; on shutdown it stops
// reading, commits what was read for up to 10 s more, and saves the
// offsets Kafka committed.
func (a *Agent) Run(ctx context.Context) error {
	a.readCtx = ctx
	if err := a.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	km, err := kafka.NewMetrics(a.reg)
	if err != nil {
		return fmt.Errorf("cannot register Kafka metrics: %w", err)
	}
	txp, err := kafka.NewTxnProducer(a.kcfg, a.transactionalID(), a.log, kafka.WithMetrics(km))
	if err != nil {
		return err
	}
	defer txp.Close()
	// The committed offsets are the acknowledged state: they are read
	// before any file is.
	if err := a.recoverOffsets(ctx); err != nil {
		return nil // ctx ended
	}
	a.b = newBatcher(a.cfg.Batch, a.calls, "tpflow-collect/"+a.host, a.host)

	sendCtx, cancelSend := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSend()
	sent := make(chan struct{})
	go func() {
		defer close(sent)
		a.sendLoop(sendCtx, txp)
	}()

	var wg sync.WaitGroup
	watcher, err := logtail.NewWatcher(a.log)
	if err != nil {
		a.log.Warn("no shared file watcher, polling only", "err", err)
	} else {
		watcher.SetPause(a.cfg.Tail.MinReadInterval)
		wg.Go(func() { _ = watcher.Run(ctx) })
		a.m.watcher.Store(watcher)
	}
	wg.Go(func() { a.discoverLoop(ctx, watcher) })
	wg.Go(func() { a.flushLoop(ctx) })
	wg.Go(func() { a.saveLoop(ctx) })
	if a.cfg.Metrics.Kmsg != "" {
		wg.Go(func() { a.kmsgLoop(ctx) })
	}
	if a.cfg.MetricsEnabled {
		mp, err := kafka.NewProducer(a.kcfg, a.kcfg.Topic(kafka.TopicMetrics), a.log, kafka.WithMetrics(km))
		if err != nil {
			return err
		}
		defer mp.Close()
		wg.Go(func() { a.metricsLoop(ctx, mp) })
	}
	<-ctx.Done()
	wg.Wait()
	a.stopTailers()

	// Send what was read, for a bounded time, then save.
	grace := time.AfterFunc(10*time.Second, cancelSend)
	defer grace.Stop()
	// Pending multiline records and fragments stay unacknowledged and are
	// read again by the next run.
	a.bmu.Lock()
	err = a.b.cut(sendCtx)
	a.bmu.Unlock()
	if err == nil {
		close(a.b.q)
		<-sent
	}
	cancelSend()
	if err := a.save(); err != nil {
		return err
	}
	return nil
}

// connect creates the topics and learns the partitions of the calls topic,
// retrying until Kafka answers or ctx is done.
func (a *Agent) connect(ctx context.Context) error {
	backoff := 100 * time.Millisecond
	for {
		err := kafka.EnsureTopics(ctx, a.kcfg)
		if err == nil {
			var parts map[string]int
			parts, err = kafka.TopicPartitions(ctx, a.kcfg, a.kcfg.Topic(kafka.TopicCalls))
			if err == nil {
				n := parts[a.kcfg.Topic(kafka.TopicCalls)]
				if n < 1 {
					err = errors.New("calls topic has no partitions")
				} else {
					a.calls = n
					a.connected.Store(true)
					return nil
				}
			}
		}
		a.log.Warn("waiting for Kafka", "err", err, "retry_in", backoff)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// flushLoop cuts batches by age and completes multiline records that
// timed out.
func (a *Agent) flushLoop(ctx context.Context) {
	tick := time.NewTicker(min(a.cfg.Batch.MaxAge/2, 100*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, t := range a.snapshotFiles() {
			if err := t.fs.poll(); err != nil {
				return
			}
		}
		a.bmu.Lock()
		var err error
		if a.b.old(a.now()) {
			err = a.b.cut(ctx)
		}
		a.bmu.Unlock()
		if err != nil {
			return
		}
	}
}

func (a *Agent) snapshotFiles() []*tailed {
	a.fmu.Lock()
	defer a.fmu.Unlock()
	out := make([]*tailed, 0, len(a.files))
	for _, t := range a.files {
		out = append(out, t)
	}
	return out
}

// saveLoop writes the state file every SaveInterval.
func (a *Agent) saveLoop(ctx context.Context) {
	tick := time.NewTicker(a.cfg.SaveInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			if err := a.save(); err != nil {
				a.m.saveErrors.Inc()
				a.log.Warn("cannot save offsets", "err", err)
			}
		}
	}
}

func (a *Agent) save() error {
	if a.cfg.StateFile == "" {
		return nil
	}
	if err := a.cp.Save(); err != nil {
		return err
	}
	if err := a.saveHint(); err != nil {
		return fmt.Errorf("cannot save the offsets position to %s: %w", a.cfg.StateFile+txnSuffix, err)
	}
	return a.saveKmsgState()
}

// discoverLoop expands the sources' globs now and every Rediscover, starts
// a Tailer for each new file and stops the Tailers of paths that have been
// gone for a minute (a rotated path comes back within RotateWait).
func (a *Agent) discoverLoop(ctx context.Context, w *logtail.Watcher) {
	first := true
	tick := time.NewTicker(a.cfg.Rediscover)
	defer tick.Stop()
	for {
		a.discover(ctx, w, first)
		first = false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (a *Agent) discover(ctx context.Context, w *logtail.Watcher, first bool) {
	seen := map[string]bool{}
	now := a.now()
	for _, src := range a.srcs {
		targets, errs := logtail.Discover(src.globs, src.roots)
		if len(errs) > 0 {
			a.m.discoverErrors.Add(float64(len(errs)))
			a.log.Debug("paths refused", "source", src.cfg.Name, "count", len(errs), "first", errs[0])
		}
		for _, t := range targets {
			if seen[t.Path] {
				continue // an earlier source has it
			}
			seen[t.Path] = true
			a.fmu.Lock()
			_, running := a.files[t.Path]
			a.fmu.Unlock()
			if !running {
				a.startTailer(ctx, w, src, t, first)
			}
		}
	}
	a.fmu.Lock()
	defer a.fmu.Unlock()
	for p, t := range a.files {
		select {
		case <-t.done:
			delete(a.files, p) // failed; the next round starts it again
			continue
		default:
		}
		if seen[p] {
			t.missing = time.Time{}
			continue
		}
		if t.missing.IsZero() {
			t.missing = now
		} else if now.Sub(t.missing) > time.Minute {
			t.cancel()
			<-t.done
			delete(a.files, p)
		}
	}
	a.m.files.Set(float64(len(a.files)))
}

func (a *Agent) startTailer(ctx context.Context, w *logtail.Watcher, src *source, t logtail.Target, first bool) {
	tcfg := a.cfg.Tail
	if !first {
		tcfg.Start = logtail.StartBeginning // created after the collector started
	}
	fs := a.newFileState(src, t)
	tl, err := logtail.NewTailer(t.Path, tcfg, a.cp, fs.handle, a.log)
	if err != nil {
		a.log.Warn("cannot follow file", "path", t.Path, "err", err)
		return
	}
	if w != nil {
		tl.UseWatcher(w)
	}
	tctx, cancel := context.WithCancel(ctx)
	td := &tailed{fs: fs, t: tl, cancel: cancel, done: make(chan struct{})}
	a.fmu.Lock()
	a.files[t.Path] = td
	a.fmu.Unlock()
	go func() {
		defer close(td.done)
		if err := tl.Run(tctx); err != nil && tctx.Err() == nil {
			a.m.tailErrors.Inc()
			a.log.Warn("stopped following file", "path", t.Path, "err", err)
		}
	}()
}

func (a *Agent) stopTailers() {
	for _, t := range a.snapshotFiles() {
		t.cancel()
		<-t.done
	}
}
