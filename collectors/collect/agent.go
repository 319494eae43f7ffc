// Package collect is the node collector behind `tpflow collect`: it follows
// the node's log files (collectors/logtail) with one shared file watcher,
// unwraps container lines, joins multi-line records and parses them
// (collectors/parse), labels them from the topology file
// (collectors/topology) and the log paths, reads cgroup, /proc, statfs
// and kernel messages (collectors/metrics), and produces event batches to
// the calls, logs and metrics topics. Calls and logs are committed in Kafka
// transactions together with the file offsets they advance, so a crash
// re-sends nothing that Kafka's read_committed consumers have; see
// DESIGN.md.
package collect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/tpflow/tpflow/collectors/logtail"
	"github.com/tpflow/tpflow/collectors/parse"
	"github.com/tpflow/tpflow/collectors/topology"
	"github.com/tpflow/tpflow/internal/config"
	"github.com/tpflow/tpflow/internal/role"
	"github.com/tpflow/tpflow/pipeline"
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

	// For Ready: standing by for the state lock; when commits began to
	// fail (unix ns, 0 while they succeed) and the last error; the last
	// commit (unix ns); the batcher, once Run made it.
	standby      atomic.Bool
	failingSince atomic.Int64
	lastErr      atomic.Value
	lastCommit   atomic.Int64
	bp           atomic.Pointer[batcher]

	// fresh is set for the very first start of an agent: no usable state
	// file. Only then does tail.start apply, to the files of the first
	// discovery round. since is when files began to go unread: the state
	// file's last save on a restart, the start otherwise.
	fresh    bool
	since    time.Time
	problems map[string]bool // discovery problems logged and not yet resolved
	rounds   atomic.Int64    // discovery rounds run

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

// New validates cfg, loads the topology file and the state file, and
// returns an Agent producing to the cluster of kcfg, logging, registering
// its metrics and telling the time as s says.
func New(cfg Config, kcfg kafka.Config, s role.Settings) (*Agent, error) {
	if err := config.Validate(cfg); err != nil {
		return nil, fmt.Errorf("cannot start collector: %w", err)
	}
	if err := cfg.CheckBudget(kcfg); err != nil {
		return nil, fmt.Errorf("cannot start collector: %w", schemas.PrefixField("collect", err))
	}
	a := &Agent{cfg: cfg, kcfg: kcfg, log: s.Log(), reg: s.Registerer, now: s.Now(), files: map[string]*tailed{}}
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
	a.loadState()
	return a, nil
}

// loadState loads the state file and the kernel sequence next to it. New
// calls it, and Run again after waiting for the state lock: the agent
// that held it saved newer offsets on its way out.
func (a *Agent) loadState() {
	cfg := a.cfg
	a.fresh, a.since = true, a.now()
	if cfg.StateFile == "" {
		a.cp = logtail.NewCheckpoints("")
		return
	}
	fi, statErr := os.Stat(cfg.StateFile)
	cp, err := logtail.LoadCheckpoints(cfg.StateFile)
	switch {
	case errors.Is(err, logtail.ErrNoState):
		a.log.Info("first start: no state file, files present now are read from tail.start", "state_file", cfg.StateFile, "start", cfg.Tail.Start)
	case err != nil:
		a.log.Warn("starting without saved offsets", "state_file", cfg.StateFile, "err", err)
	case statErr == nil:
		a.fresh, a.since = false, fi.ModTime()
	}
	cp.Touch() // the next start knows it is not the first
	a.cp = cp
	a.loadKmsgState()
}

// ErrNotConnected is returned by Ready until Kafka has answered.
var ErrNotConnected = errors.New("not connected to Kafka yet")

// Routes is empty: the collect role serves only the common paths.
func (a *Agent) Routes() []role.Route { return nil }

// Host returns the host label.
func (a *Agent) Host() string { return a.host }

// Run collects until ctx is done. It waits for Kafka, then for the state
// lock (another agent on the same state directory, during a rolling
// update, holds it until it stops), and resumes from the offsets committed
// in Kafka before it starts reading; on shutdown it stops reading,
// commits what was read for up to 10 s more, saves the offsets Kafka
// committed and releases the lock.
func (a *Agent) Run(ctx context.Context) error {
	a.readCtx = ctx
	if err := a.connect(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	lock, waited, err := a.lockState(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopped while standing by: nothing read, nothing to save
		}
		return err
	}
	if lock != nil {
		defer lock.Close() // after the last save
	}
	if waited {
		a.loadState() // the previous holder saved newer offsets as it stopped
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
	a.lastCommit.Store(a.now().UnixNano())
	a.bp.Store(a.b)

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
	b := pipeline.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	_, err := pipeline.Retry(ctx, &b, 0, func() error {
		if err := kafka.EnsureTopics(ctx, a.kcfg); err != nil {
			return err
		}
		parts, err := kafka.TopicPartitions(ctx, a.kcfg, a.kcfg.Topic(kafka.TopicCalls))
		if err != nil {
			return err
		}
		n := parts[a.kcfg.Topic(kafka.TopicCalls)]
		if n < 1 {
			return errors.New("calls topic has no partitions")
		}
		a.calls = n
		a.connected.Store(true)
		return nil
	}, func(_ int, pause time.Duration, err error) {
		a.log.Warn("waiting for Kafka", "err", err, "retry_in", pause)
	})
	if err != nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
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

// discoverLoop expands the sources' globs now, whenever an entry is
// created, renamed or removed in a directory where they can match, and
// every Rediscover as the safety net for missed events; it starts a
// Tailer for each new file and stops the Tailers of paths that have been
// gone for a minute (a rotated path comes back at once).
func (a *Agent) discoverLoop(ctx context.Context, w *logtail.Watcher) {
	first := true
	tick := time.NewTicker(a.cfg.Rediscover)
	defer tick.Stop()
	wake := make(chan struct{}, 1)
	watched := map[string]func(){}
	defer func() {
		for _, cancel := range watched {
			cancel()
		}
	}()
	for {
		// Directories are watched before the globs are expanded, so a
		// file created in between is seen by one or the other.
		if w != nil {
			a.watchDirs(w, watched, wake)
		}
		a.discover(ctx, w, first)
		first = false
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-wake:
		}
	}
}

// watchDirs makes w signal wake on entries coming and going in every
// directory where a source's glob can match, and stops watching those
// that are gone.
func (a *Agent) watchDirs(w *logtail.Watcher, watched map[string]func(), wake chan struct{}) {
	var globs []string
	for _, src := range a.srcs {
		globs = append(globs, src.globs...)
	}
	want := map[string]bool{}
	for _, d := range logtail.GlobDirs(globs) {
		want[d] = true
		if watched[d] != nil {
			continue
		}
		cancel, err := w.NotifyDir(d, wake)
		if err != nil {
			// Logged once and not tried again while the directory exists:
			// the rescan every rediscover_interval still finds its files.
			a.problem(false, "cannot watch a log directory, new files in it are found by the periodic rescan only",
				err, "raise fs.inotify.max_user_watches if it is the limit")
			cancel = func() {}
		}
		watched[d] = cancel
	}
	for d, cancel := range watched {
		if !want[d] {
			cancel()
			delete(watched, d)
		}
	}
}

// discover runs one round: it starts a Tailer for every new target and
// retires those whose path has been gone for a minute. The first round
// logs, once its Tailers have opened their files, what they resumed,
// started fresh and skipped.
func (a *Agent) discover(ctx context.Context, w *logtail.Watcher, first bool) {
	defer a.rounds.Add(1)
	seen := map[string]bool{}
	now := a.now()
	type start struct {
		src *source
		t   logtail.Target
	}
	var starts []start
	problems := map[string]bool{}
	logged, more := 0, 0
	for _, src := range a.srcs {
		targets, errs := logtail.Discover(src.globs, src.roots)
		for _, err := range errs {
			problems[err.Error()] = true
			if a.problems[err.Error()] {
				continue
			}
			if logged++; logged > maxProblemLogs {
				a.m.discoverErrors.Inc()
				more++
				continue
			}
			a.problem(true, "discovery problem", err, remedy(err), "source", src.cfg.Name)
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
				starts = append(starts, start{src, t})
			}
		}
	}
	if more > 0 {
		a.log.Warn("more discovery problems, not logged one by one", "count", more)
	}
	for p := range a.problems {
		if !problems[p] {
			a.log.Info("discovery problem resolved", "problem", p)
		}
	}
	a.problems = problems
	var rep *startReport
	if first {
		rep = &startReport{log: a.log, left: len(starts), fresh: a.fresh, counts: map[string]int{}}
		if len(starts) == 0 {
			rep.done()
		}
	}
	for _, s := range starts {
		a.startTailer(ctx, w, s.src, s.t, first, rep)
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

// maxProblemLogs bounds the discovery problems logged one by one in a
// round (a node can have hundreds of refused links).
const maxProblemLogs = 5

// problem logs a discovery problem once, with what to do about it, and
// counts it; discover logs it again only after it was resolved.
func (a *Agent) problem(count bool, msg string, err error, remedy string, args ...any) {
	if count {
		a.m.discoverErrors.Inc()
	}
	a.log.Warn(msg, append([]any{"err", err, "remedy", remedy}, args...)...)
}

// remedy says what to do about a discovery error.
func remedy(err error) string {
	switch {
	case errors.Is(err, logtail.ErrOutsideRoot):
		return "the path leads outside the source's roots and is not followed: add the directory it leads to to the source's roots, or remove the link"
	case errors.Is(err, fs.ErrNotExist):
		return "nothing is followed there until it exists (a root of a preset may be missing on this node, e.g. /var/lib/docker/containers without Docker): create it, or set the source's roots, globs or preset to what this node has; it is looked for again every rediscover_interval"
	case errors.Is(err, fs.ErrPermission):
		return "the collector cannot read it: run it as a user that can, or mount the directory readable"
	}
	return "check the source's globs and roots"
}

// startReport gathers where the Tailers of the first round began reading
// and logs it once they all have: one INFO line, and one DEBUG line per
// file.
type startReport struct {
	log    *slog.Logger
	fresh  bool
	mu     sync.Mutex
	left   int
	counts map[string]int
	rot    int
}

func (r *startReport) opened(o logtail.Opening) {
	r.log.Debug("file resumed", "path", o.Path, "how", o.How, "offset", o.Offset, "size", o.Size, "rotated_read", o.Rotated)
	r.mu.Lock()
	r.counts[o.How]++
	r.rot += o.Rotated
	r.left--
	last := r.left == 0
	r.mu.Unlock()
	if last {
		r.done()
	}
}

func (r *startReport) done() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.log.Info("following files",
		"first_start", r.fresh,
		"resumed", r.counts[logtail.OpenResumed],
		"from_start", r.counts[logtail.OpenFresh],
		"skipped_to_end", r.counts[logtail.OpenEnd],
		"absent", r.counts[logtail.OpenAbsent],
		"failed", r.counts[logtail.OpenFailed],
		"refused", r.counts[logtail.OpenRefused],
		"rotated_read", r.rot)
}

func (a *Agent) startTailer(ctx context.Context, w *logtail.Watcher, src *source, t logtail.Target, first bool, rep *startReport) {
	tcfg := a.cfg.Tail
	if !first || !a.fresh {
		// tail.start is for the files present at the very first start;
		// any other file was created while nobody read it.
		tcfg.Start = logtail.StartBeginning
	}
	fs := a.newFileState(src, t)
	tl, err := logtail.NewTailer(t.Path, tcfg, a.cp, fs.handle, a.log)
	if err == nil && t.Root != "" {
		err = tl.ConfineTo(t.Root) // no link planted after discovery leads out of the root
	}
	if err != nil {
		a.log.Warn("cannot follow file", "path", t.Path, "err", err)
		if rep != nil {
			rep.opened(logtail.Opening{Path: t.Path, How: logtail.OpenFailed})
		}
		return
	}
	if !first || !a.fresh {
		tl.ReadRotatedSince(a.since)
	}
	if rep != nil {
		tl.OnFirstOpen(rep.opened)
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
