package collect

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/tpflow/tpflow/collectors/logtail"
	"github.com/tpflow/tpflow/collectors/metrics"
	"github.com/tpflow/tpflow/collectors/topology"
	"github.com/tpflow/tpflow/internal/atomicfile"
	"github.com/tpflow/tpflow/pipeline/kafka"
	"github.com/tpflow/tpflow/schemas"
	"github.com/tpflow/tpflow/schemas/codec"
)

// Kernel log events carry these; the alert role classifies them by their
// message with metrics.KernelErrorFilter.
const (
	StreamKmsg    = "kmsg"
	LevelError    = "ERROR"
	SourceKmsg    = "/dev/kmsg"
	kmsgSuffix    = ".kmsg"
	maxCgroupWalk = 8
)

// containerCgroup is one container's cgroup directory.
type containerCgroup struct {
	rel    string // relative to the hierarchy root
	id     string
	podUID string
}

var (
	scopeRE = regexp.MustCompile(`^(?:docker|cri-containerd|crio|libpod)-([0-9a-zA-Z]+)\.scope$`)
	podRE   = regexp.MustCompile(`pod([0-9a-fA-F_-]{1,64})(?:\.slice)?$`)
	hexRE   = regexp.MustCompile(`^[0-9a-f]{12,64}$`)
)

// findContainers walks a cgroup hierarchy for container directories:
// systemd scopes (cri-containerd-<id>.scope, docker-<id>.scope), the
// children of a kubepods pod<uid> directory, and docker/<id>.
func findContainers(root string) []containerCgroup {
	var out []containerCgroup
	var walk func(rel, podUID string, depth int)
	walk = func(rel, podUID string, depth int) {
		if depth > maxCgroupWalk {
			return
		}
		ents, err := os.ReadDir(filepath.Join(root, rel))
		if err != nil {
			return
		}
		parent := filepath.Base(rel)
		for _, e := range ents {
			if !e.IsDir() {
				continue
			}
			name := e.Name()
			child := filepath.Join(rel, name)
			if m := scopeRE.FindStringSubmatch(name); m != nil {
				out = append(out, containerCgroup{rel: child, id: m[1], podUID: podUID})
				continue
			}
			if podUID != "" && strings.HasPrefix(parent, "pod") || parent == "docker" && hexRE.MatchString(name) {
				out = append(out, containerCgroup{rel: child, id: name, podUID: podUID})
				continue
			}
			uid := podUID
			if m := podRE.FindStringSubmatch(name); m != nil && strings.Contains(name, "pod") {
				uid = strings.ReplaceAll(m[1], "_", "-")
			}
			walk(child, uid, depth+1)
		}
	}
	walk("", "", 0)
	return out
}

// metricsLoop reads the node and its containers every interval and
// produces the samples to the metrics topic, one message per (host,
// container). Samples are periodic: a round Kafka does not take within
// the interval is dropped and counted, never queued.
func (a *Agent) metricsLoop(ctx context.Context, p *kafka.Producer) {
	mc := a.cfg.Metrics
	node := metrics.NodeReader{Proc: mc.ProcRoot}
	cg := metrics.CgroupReader{Root: mc.CgroupRoot}
	version := mc.CgroupVersion
	var prevStat *metrics.ProcStat
	prev := map[string]*metrics.CgroupStats{}
	tick := time.NewTicker(mc.Interval)
	defer tick.Stop()
	for {
		if version == metrics.CgroupAuto {
			if v, err := metrics.DetectCgroupVersion(mc.CgroupRoot); err == nil {
				version = v
			}
		}
		now := a.now()
		var msgs []kafkago.Message
		var n int
		add := func(container string, labels []schemas.Label, samples []metrics.Sample) {
			if len(samples) == 0 {
				return
			}
			var b codec.Builder
			b.SetProducer("tpflow-collect/" + a.host)
			var ls []schemas.Label
			for _, s := range samples {
				ls = append(append(ls[:0], labels...), s.Labels...)
				b.AddMetric(codec.Metric{TsUnixMs: now.UnixMilli(), Labels: b.LabelSet(ls), Name: b.Symbol(s.Name), Value: s.Value, Kind: uint8(s.Kind)})
			}
			n += len(samples)
			msgs = append(msgs, kafkago.Message{Key: kafka.MetricKey(a.host, container), Value: b.AppendTo(nil)})
		}

		// The node.
		var ns []metrics.Sample
		if st, err := node.ReadStat(); err == nil {
			ns = append(ns, st.Samples(prevStat)...)
			prevStat = &st
		} else {
			a.m.sampleErrors.Inc()
		}
		if mi, err := node.ReadMemInfo(); err == nil {
			ns = append(ns, mi.Samples()...)
		}
		if la, err := node.ReadLoadAvg(); err == nil {
			ns = append(ns, la.Samples()...)
		}
		if ds, err := node.ReadDiskStats(); err == nil {
			ns = append(ns, ds.Samples()...)
		}
		if nd, err := node.ReadNetDev(); err == nil {
			ns = append(ns, nd.Samples()...)
		}
		for _, p := range mc.FileSystems {
			if fu, err := metrics.ReadFSUsage(p); err == nil {
				ns = append(ns, fu.Samples()...)
			} else {
				a.m.sampleErrors.Inc()
			}
		}
		add("", a.nodeLabels(), ns)

		// The containers.
		hier := mc.CgroupRoot
		if version == metrics.CgroupV1 {
			hier = filepath.Join(mc.CgroupRoot, "memory")
		}
		pods, ids := a.knownContainers()
		seen := map[string]bool{}
		for _, c := range findContainers(hier) {
			var st metrics.CgroupStats
			var err error
			if version == metrics.CgroupV1 {
				st, err = cg.ReadV1(c.rel)
			} else {
				st, err = cg.ReadV2(c.rel)
			}
			if err != nil {
				a.m.sampleErrors.Inc()
				continue
			}
			seen[c.id] = true
			t := ids[c.id]
			if t.Pod == "" {
				if pt, ok := pods[c.podUID]; ok {
					t.Namespace, t.Pod = pt.Namespace, pt.Pod
				}
			}
			name := t.Container
			if name == "" {
				name = shortID(c.id)
			}
			add(name, a.labelsOf(t.Namespace, t.Pod, name), st.Samples(prev[c.id]))
			prev[c.id] = &st
		}
		for id := range prev {
			if !seen[id] {
				delete(prev, id)
			}
		}
		if len(msgs) > 0 {
			pctx, cancel := context.WithTimeout(ctx, mc.Interval)
			if err := p.Produce(pctx, msgs...); err != nil {
				if ctx.Err() == nil {
					a.m.sampleErrors.Inc()
					a.log.Warn("cannot produce metric samples, dropping this round", "err", err)
				}
			} else {
				a.m.samples.Add(float64(n))
			}
			cancel()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// knownContainers maps pod UIDs and container IDs of the followed files
// to their targets, to name the cgroups found.
func (a *Agent) knownContainers() (pods, ids map[string]logtail.Target) {
	pods, ids = map[string]logtail.Target{}, map[string]logtail.Target{}
	for _, t := range a.snapshotFiles() {
		tg := t.fs.target
		if tg.PodUID != "" {
			pods[tg.PodUID] = tg
		}
		if tg.ContainerID != "" {
			ids[tg.ContainerID] = tg
		}
	}
	return pods, ids
}

// nodeLabels are the labels of node-level events: the topology's default
// and the host.
func (a *Agent) nodeLabels() []schemas.Label {
	return a.labelsOf("", "", "")
}

func (a *Agent) labelsOf(namespace, pod, container string) []schemas.Label {
	l := a.topo.Resolve(topology.Source{Namespace: namespace, Pod: pod, Container: container})
	out := []schemas.Label{
		{Name: schemas.LabelSystem, Value: l.System},
		{Name: schemas.LabelApp, Value: l.App},
		{Name: schemas.LabelGroup, Value: l.Group},
		{Name: schemas.LabelIDC, Value: l.IDC},
		{Name: schemas.LabelEnv, Value: l.Env},
		{Name: schemas.LabelHost, Value: a.host},
	}
	if container != "" {
		out = append(out,
			schemas.Label{Name: schemas.LabelNamespace, Value: namespace},
			schemas.Label{Name: schemas.LabelPod, Value: pod},
			schemas.Label{Name: schemas.LabelContainer, Value: container})
	}
	return out
}

// kmsgState is what the state file's .kmsg companion holds: the next
// kernel record not yet acknowledged, valid for one boot.
type kmsgState struct {
	BootID  string `json:"boot_id"`
	NextSeq uint64 `json:"next_seq"`
}

func (a *Agent) bootID() string {
	b, _ := os.ReadFile(filepath.Join(a.cfg.Metrics.ProcRoot, "sys/kernel/random/boot_id"))
	return strings.TrimSpace(string(b))
}

func (a *Agent) loadKmsgState() {
	a.kmsgBoot = a.bootID()
	b, err := os.ReadFile(a.cfg.StateFile + kmsgSuffix)
	if err != nil {
		return
	}
	var s kmsgState
	if json.Unmarshal(b, &s) == nil && s.BootID == a.kmsgBoot {
		a.kmsgAcked = s.NextSeq
	}
}

func (a *Agent) saveKmsgState() error {
	a.kmsgMu.Lock()
	s := kmsgState{BootID: a.kmsgBoot, NextSeq: a.kmsgAcked}
	a.kmsgMu.Unlock()
	if s.NextSeq == 0 {
		return nil
	}
	b, _ := json.Marshal(s)
	return atomicfile.Write(a.cfg.StateFile+kmsgSuffix, b, 0o644)
}

// kmsgLabelBytes is the bytes of the names and values of labels.
func kmsgLabelBytes(labels []schemas.Label) int {
	n := 0
	for _, l := range labels {
		n += len(l.Name) + len(l.Value)
	}
	return n
}

// kmsgLoop reads kernel records from the start of the ring (or of the
// file), skips those acknowledged before a restart in the same boot, and
// turns each that matches a kernel error class into an ERROR log event.
func (a *Agent) kmsgLoop(ctx context.Context) {
	path := a.cfg.Metrics.Kmsg
	// Reads wait in the runtime's poller and end when ctx does: a stop
	// never waits for the next kernel message.
	f, closeKmsg, err := metrics.OpenKmsg(ctx, path)
	if err != nil {
		a.log.Warn("cannot read kernel messages", "path", path, "err", err)
		return
	}
	defer func() { _ = closeKmsg() }()
	a.kmsgMu.Lock()
	skip := a.kmsgAcked
	a.kmsgMu.Unlock()
	filter := metrics.NewKernelErrorFilter()
	r := metrics.NewKmsgReader(f)
	boot := bootTime(a.cfg.Metrics.ProcRoot)
	labels := a.nodeLabels()
	var ls uint32
	var gen uint64
	bad := 0
	for {
		rec, err := r.Next()
		if r.Malformed != bad {
			a.m.kmsgBad.Add(float64(r.Malformed - bad))
			bad = r.Malformed
		}
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			if !errors.Is(err, io.EOF) && !errors.Is(err, fs.ErrClosed) && !errors.Is(err, os.ErrDeadlineExceeded) {
				a.log.Warn("cannot read kernel messages", "err", err)
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		a.m.kmsgRecords.Inc()
		if rec.Seq < skip {
			continue
		}
		classes := filter.Classes(rec.Message)
		if len(classes) == 0 {
			continue
		}
		for _, c := range classes {
			a.m.kernelErrors.WithLabelValues(string(c)).Inc()
		}
		ts := a.now().UnixNano()
		if !boot.IsZero() {
			ts = boot.Add(time.Duration(rec.Usec) * time.Microsecond).UnixNano()
		}
		msg := strings.ToValidUTF8(rec.Message, "\uFFFD")
		a.bmu.Lock()
		b := a.b
		if !b.fits(len(msg)+len(SourceKmsg)+kmsgLabelBytes(labels)+recordRoom, 0) && !b.empty() {
			if err := b.cut(ctx); err != nil {
				a.bmu.Unlock()
				return
			}
		}
		if gen != b.gen {
			ls, gen = b.logs.LabelSet(labels), b.gen
		}
		e := logEvent{tsNano: ts, labels: ls, stream: b.logs.Symbol(StreamKmsg), level: b.logs.Symbol(LevelError), message: msg,
			source: b.logs.Symbol(SourceKmsg), offset: rec.Seq}
		if err := b.addLog(&e); err == nil {
			a.m.logs.Inc()
		}
		b.kmsgSeq = max(b.kmsgSeq, rec.Seq+1)
		if b.full() {
			err = b.cut(ctx)
		}
		a.bmu.Unlock()
		if err != nil {
			return
		}
	}
}

// bootTime reads btime from the proc stat file; zero if it cannot.
func bootTime(proc string) time.Time {
	b, err := os.ReadFile(filepath.Join(proc, "stat"))
	if err != nil {
		return time.Time{}
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "btime "); ok {
			var sec int64
			for _, c := range strings.TrimSpace(rest) {
				if c < '0' || c > '9' {
					return time.Time{}
				}
				sec = sec*10 + int64(c-'0')
			}
			return time.Unix(sec, 0)
		}
	}
	return time.Time{}
}
